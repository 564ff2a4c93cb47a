package sitehost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// notFoundMode is what a site serves for a path with no file.
type notFoundMode int

const (
	// notFoundAuto: the nearest 404.html with status 404; without one, the
	// root index.html with status 200 for paths without an extension (a
	// single-page app's routes); otherwise a plain 404.
	notFoundAuto notFoundMode = iota
	// notFoundSPA ("single-page-application"): the root index.html with
	// status 200 for any missing path except those of missing assets.
	notFoundSPA
	// notFound404Page ("404-page"): the nearest 404.html, else a plain 404.
	notFound404Page
	// notFoundNone ("none"): a plain 404.
	notFoundNone
)

// configFiles configure a site and are never served, even though the
// manifest lists them.
var configFiles = map[string]bool{
	"_headers":       true,
	"_redirects":     true,
	"_routes.json":   true,
	".assetsignore":  true,
	"wrangler.json":  true,
	"wrangler.jsonc": true,
	"wrangler.toml":  true,
	"netlify.toml":   true,
}

// file is one servable path of one site, with every header value it needs
// computed once, when the site is loaded.
type file struct {
	path         string
	digest       string
	size         int64
	contentType  []string
	cacheControl []string
	etag         []string
	length       []string
	// encoding is the Content-Encoding of a variant, nil for a file itself.
	encoding []string
	// br and gz are the variants compressed at deploy time, each a file of
	// its own in the blob cache (with its digest, size, length, ETag and
	// encoding, and no other header values); nil when the manifest has none.
	br, gz *file
	// broken marks a variant whose blob is lost or damaged: the file
	// itself is sent instead.
	broken atomic.Bool
	// vary is set when the response depends on Accept-Encoding: the file
	// has a variant, or is gzipped on cache fill.
	vary bool

	// gzip marks the fallback for manifests older than deploy-time
	// compression: the type compresses and the file is large enough for
	// gzip to pay, so it is gzipped once when its content enters the cache.
	gzip     bool
	etagGzip []string

	// blob is the cached content, set by the blob cache and cleared by it on
	// eviction, so a hit costs one atomic load and no map lookup.
	blob atomic.Pointer[blob]
}

// site is one deployment's parsed manifest and rules. Deployments are
// immutable, so a site never changes once loaded.
type site struct {
	deploymentID string
	manifest     string
	modTime      time.Time
	lastModified []string
	// routes maps a request path without its leading slash to a file:
	// "" and "about/" to index files, "about" to about.html or
	// about/index.html, and every file to itself.
	routes    map[string]*file
	index     *file
	notFound  notFoundMode
	redirects *redirects
	headers   []*headerRule

	hdrMu        sync.RWMutex
	hdrMemo      map[hdrKey]*headerSet
	hdrMemoBytes int // the memo's path bytes

	// cost estimates the memory the site holds, for siteCache's budget.
	cost int64
}

// minGzipSize is where gzip starts to save more than its own framing.
const minGzipSize = 256

// maxHeaderMemo and maxHeaderMemoBytes bound the per-site memo of _headers
// results, by count and by the bytes of the paths, which any client makes
// up; paths beyond them are matched on every request.
const (
	maxHeaderMemo      = 4096
	maxHeaderMemoBytes = 256 << 10
)

// statter is implemented by stores that know when a blob was last stored
// (artifact/fs does); it gives Last-Modified a value that agrees across
// processes.
type statter interface {
	Stat(ctx context.Context, digest string) (size int64, modTime time.Time, err error)
}

// loadSite reads a deployment's manifest and its rule files.
func (h *Host) loadSite(ctx context.Context, deploymentID, manifestDigest string) (*site, error) {
	m, err := libra.LoadManifest(ctx, h.artifacts, manifestDigest)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", deploymentID, err)
	}
	s := &site{
		deploymentID: deploymentID,
		manifest:     manifestDigest,
		routes:       make(map[string]*file, len(m.Files)*2),
	}
	s.modTime = time.Now()
	if st, ok := h.artifacts.(statter); ok {
		if _, mt, err := st.Stat(ctx, manifestDigest); err == nil {
			s.modTime = mt
		}
	}
	s.modTime = s.modTime.Truncate(time.Second)
	s.lastModified = []string{s.modTime.UTC().Format(http.TimeFormat)}

	// A manifest from before deploy-time compression names no variants at
	// all: its files are gzipped on cache fill instead. One that names any
	// was compressed at deploy time, and what has no variant stays as is.
	legacyGzip := true
	for _, mf := range m.Files {
		if mf.Gzip != nil || mf.Brotli != nil {
			legacyGzip = false
			break
		}
	}

	var files []*file
	for p, mf := range m.Files {
		if configFiles[p] || hiddenPath(p) {
			continue
		}
		t := typeOf(p)
		f := &file{
			path:         p,
			digest:       mf.Digest,
			size:         mf.Size,
			contentType:  t.contentType,
			cacheControl: cacheControlFor(p, t),
			etag:         []string{`"` + mf.Digest + `"`},
			length:       []string{strconv.FormatInt(mf.Size, 10)},
			gzip:         legacyGzip && t.compressible && mf.Size >= minGzipSize,
		}
		if f.gzip {
			f.etagGzip = []string{`"` + mf.Digest + `-gzip"`}
		}
		if mf.Brotli != nil {
			f.br = variant(f, mf.Brotli, brEncoding, "-br")
		}
		if mf.Gzip != nil {
			f.gz = variant(f, mf.Gzip, gzipEncoding, "-gzip")
		}
		f.vary = f.gzip || f.br != nil || f.gz != nil
		files = append(files, f)
		s.routes[p] = f
	}
	// Pretty URLs, in priority order: a real file, then for "x" the page
	// x.html before x/index.html, and for "x/" the reverse.
	for _, f := range files {
		if dir, ok := indexDir(f.path); ok {
			setIfAbsent(s.routes, dir, f)
		} else if stem, ok := strings.CutSuffix(f.path, ".html"); ok {
			setIfAbsent(s.routes, stem, f)
		}
	}
	for _, f := range files {
		if dir, ok := indexDir(f.path); ok {
			if dir != "" {
				setIfAbsent(s.routes, strings.TrimSuffix(dir, "/"), f)
			}
		} else if stem, ok := strings.CutSuffix(f.path, ".html"); ok {
			setIfAbsent(s.routes, stem+"/", f)
		}
	}
	s.index = s.routes["index.html"]

	if b, err := h.readConfig(ctx, m, "_redirects"); err != nil {
		return nil, err
	} else if b != nil {
		rs, warnings := parseRedirects(b)
		s.redirects = rs
		h.warnRules(deploymentID, warnings)
	}
	if b, err := h.readConfig(ctx, m, "_headers"); err != nil {
		return nil, err
	} else if b != nil {
		rules, warnings := parseHeaders(b)
		s.headers = rules
		h.warnRules(deploymentID, warnings)
	}
	for _, name := range []string{"wrangler.jsonc", "wrangler.json", "wrangler.toml"} {
		b, err := h.readConfig(ctx, m, name)
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		mode, err := notFoundHandling(name, b)
		if err != nil {
			h.log.Warn("site config ignored", "deployment", deploymentID, "file", name, "error", err)
			continue
		}
		s.notFound = mode
		break
	}
	// The build's decision wins: it read the project's own wrangler config
	// (which a built output does not carry) and knows its framework.
	switch m.NotFound {
	case libra.NotFoundSPA:
		s.notFound = notFoundSPA
	case libra.NotFound404Page:
		s.notFound = notFound404Page
	}
	if s.headers != nil {
		s.hdrMemo = map[hdrKey]*headerSet{}
	}
	s.cost = s.estimateCost(files)
	return s, nil
}

// Rough per-item costs for estimateCost, measured on amd64 with some room:
// a file with its header slices, a routes map slot, a _headers or
// _redirects rule, and a memo slot.
const (
	fileCost     = 384
	routeCost    = 64
	ruleCost     = 256
	memoSlotCost = 96
)

// estimateCost is what a loaded site holds in memory, give or take: its
// files, its routes, its rules and the most its _headers memo may grow to.
func (s *site) estimateCost(files []*file) int64 {
	n := int64(len(files)) * fileCost
	for _, f := range files {
		n += int64(len(f.path))
	}
	for p := range s.routes {
		n += routeCost + int64(len(p))
	}
	if s.redirects != nil {
		rules := len(s.redirects.dynamic)
		for _, rs := range s.redirects.static {
			rules += len(rs)
		}
		n += int64(rules) * ruleCost
	}
	if s.headers != nil {
		n += int64(len(s.headers))*ruleCost + maxHeaderMemoBytes + maxHeaderMemo*memoSlotCost
	}
	return n
}

// variant describes one of f's compressed variants as a file of its own.
// Its ETag is f's digest with a suffix, so each encoding has its own
// validator and a change of content changes them all.
func variant(f *file, e *libra.Encoded, encoding []string, suffix string) *file {
	return &file{
		path:     f.path,
		digest:   e.Digest,
		size:     e.Size,
		etag:     []string{`"` + f.digest + suffix + `"`},
		length:   []string{strconv.FormatInt(e.Size, 10)},
		encoding: encoding,
	}
}

// indexDir returns the directory route ("" for the root, "docs/" for
// docs/index.html) that an index.html stands for.
func indexDir(p string) (string, bool) {
	if p == "index.html" {
		return "", true
	}
	if dir, ok := strings.CutSuffix(p, "/index.html"); ok {
		return dir + "/", true
	}
	return "", false
}

func setIfAbsent(m map[string]*file, k string, f *file) {
	if _, ok := m[k]; !ok {
		m[k] = f
	}
}

// hiddenPath reports paths with a dot segment other than .well-known:
// a static project's .env or .git must not go public because a build
// copied it along.
func hiddenPath(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg != "" && seg[0] == '.' && seg != ".well-known" {
			return true
		}
	}
	return false
}

func (h *Host) readConfig(ctx context.Context, m *libra.Manifest, name string) ([]byte, error) {
	mf, ok := m.Files[name]
	if !ok {
		return nil, nil
	}
	if mf.Size > maxRuleFileBytes {
		h.log.Warn("site config file too large, ignored", "file", name, "size", mf.Size)
		return nil, nil
	}
	rc, err := h.artifacts.Open(ctx, mf.Digest)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxRuleFileBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

func (h *Host) warnRules(deploymentID string, warnings []string) {
	for _, w := range warnings {
		h.log.Warn("site rule ignored", "deployment", deploymentID, "reason", w)
	}
}

var tomlNotFound = regexp.MustCompile(`(?m)^\s*not_found_handling\s*=\s*["']([a-z0-9-]+)["']`)

// notFoundHandling reads assets.not_found_handling from a wrangler config.
func notFoundHandling(name string, b []byte) (notFoundMode, error) {
	var value string
	if strings.HasSuffix(name, ".toml") {
		if m := tomlNotFound.FindSubmatch(b); m != nil {
			value = string(m[1])
		}
	} else {
		var cfg struct {
			Assets struct {
				NotFoundHandling string `json:"not_found_handling"`
			} `json:"assets"`
		}
		if err := json.Unmarshal(stripJSONC(b), &cfg); err != nil {
			return notFoundAuto, fmt.Errorf("parse: %w", err)
		}
		value = cfg.Assets.NotFoundHandling
	}
	switch value {
	case "":
		return notFoundAuto, nil
	case "single-page-application":
		return notFoundSPA, nil
	case "404-page":
		return notFound404Page, nil
	case "none":
		return notFoundNone, nil
	}
	return notFoundAuto, fmt.Errorf("unknown not_found_handling %q", value)
}

// stripJSONC turns JSON with comments and trailing commas (wrangler.jsonc)
// into JSON.
func stripJSONC(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(in) && in[j] != '"' {
				if in[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j, len(in)-1)
			out = append(out, in[i:j+1]...)
			i = j
		case c == '/' && i+1 < len(in) && in[i+1] == '/':
			for i < len(in) && in[i] != '\n' {
				i++
			}
			out = append(out, '\n')
		case c == '/' && i+1 < len(in) && in[i+1] == '*':
			end := bytes.Index(in[i+2:], []byte("*/"))
			if end < 0 {
				return out
			}
			i += 2 + end + 1
			out = append(out, ' ')
		case c == '}' || c == ']':
			// Drop a comma that only whitespace separates from the close.
			k := len(out) - 1
			for k >= 0 && (out[k] == ' ' || out[k] == '\t' || out[k] == '\n' || out[k] == '\r') {
				k--
			}
			if k >= 0 && out[k] == ',' {
				out = append(out[:k], out[k+1:]...)
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// hdrKey is a _headers memo key: the request path and the file that
// answers it (nil for none). A struct, so a lookup allocates nothing.
type hdrKey struct {
	path string
	file *file
}

// headersFor returns the _headers result for request path p answered by f
// (nil when no file is), memoized.
func (s *site) headersFor(p string, f *file) *headerSet {
	key := hdrKey{p, f}
	s.hdrMu.RLock()
	hs, ok := s.hdrMemo[key]
	s.hdrMu.RUnlock()
	if ok {
		return hs
	}
	filePath := ""
	if f != nil {
		filePath = "/" + f.path
	}
	hs = headersFor(s.headers, p, filePath)
	s.hdrMu.Lock()
	if len(s.hdrMemo) < maxHeaderMemo && s.hdrMemoBytes+len(p) <= maxHeaderMemoBytes {
		if _, ok := s.hdrMemo[key]; !ok {
			s.hdrMemoBytes += len(p)
		}
		s.hdrMemo[hdrKey{strings.Clone(p), f}] = hs
	}
	s.hdrMu.Unlock()
	return hs
}

// nearest404 finds the 404.html closest to p, walking up to the root.
func (s *site) nearest404(key string) *file {
	dir := key
	for {
		i := strings.LastIndexByte(dir, '/')
		if i < 0 {
			return s.routes["404.html"]
		}
		dir = dir[:i]
		if f := s.routes[dir+"/404.html"]; f != nil {
			return f
		}
	}
}
