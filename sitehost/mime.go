package sitehost

import (
	"mime"
	"path"
	"strings"
)

// fileType is what a file's extension decides about serving it. The values
// are one-element slices so they can be put into a response header map as
// they are, shared by every response (cap == len, so an append by later
// middleware copies instead of writing into them).
type fileType struct {
	contentType []string
	// compressible types of deployments from before deploy-time
	// compression are gzipped once when they enter the memory cache.
	compressible bool
	html         bool
}

// builtinTypes does not depend on the host's /etc/mime.types, which differs
// between machines (and on some maps .js to application/x-javascript).
var builtinTypes = map[string]fileType{}

func init() {
	for _, t := range []struct {
		exts         string
		ctype        string
		compressible bool
	}{
		{".html .htm", "text/html; charset=utf-8", true},
		{".css", "text/css; charset=utf-8", true},
		{".js .mjs .cjs", "text/javascript; charset=utf-8", true},
		{".json .map", "application/json; charset=utf-8", true},
		{".webmanifest", "application/manifest+json; charset=utf-8", true},
		{".xml", "application/xml; charset=utf-8", true},
		{".rss", "application/rss+xml; charset=utf-8", true},
		{".atom", "application/atom+xml; charset=utf-8", true},
		{".txt", "text/plain; charset=utf-8", true},
		{".md", "text/markdown; charset=utf-8", true},
		{".csv", "text/csv; charset=utf-8", true},
		{".yaml .yml", "application/yaml; charset=utf-8", true},
		{".svg", "image/svg+xml", true},
		{".wasm", "application/wasm", true},
		{".ico", "image/x-icon", true},
		{".ttf", "font/ttf", true},
		{".otf", "font/otf", true},
		{".eot", "application/vnd.ms-fontobject", true},
		{".gltf", "model/gltf+json", true},
		{".woff2", "font/woff2", false},
		{".woff", "font/woff", false},
		{".webp", "image/webp", false},
		{".avif", "image/avif", false},
		{".png", "image/png", false},
		{".jpg .jpeg", "image/jpeg", false},
		{".gif", "image/gif", false},
		{".bmp", "image/bmp", true},
		{".glb", "model/gltf-binary", false},
		{".mp4", "video/mp4", false},
		{".webm", "video/webm", false},
		{".mp3", "audio/mpeg", false},
		{".ogg", "audio/ogg", false},
		{".wav", "audio/wav", false},
		{".pdf", "application/pdf", false},
		{".zip", "application/zip", false},
	} {
		for _, ext := range strings.Fields(t.exts) {
			builtinTypes[ext] = fileType{
				contentType:  []string{t.ctype},
				compressible: t.compressible,
				html:         ext == ".html" || ext == ".htm",
			}
		}
	}
}

var octetStream = fileType{contentType: []string{"application/octet-stream"}}

// typeOf decides a manifest path's type. It runs when a site is loaded, not
// per request.
func typeOf(p string) fileType {
	ext := strings.ToLower(path.Ext(p))
	if ext == "" {
		return octetStream
	}
	if t, ok := builtinTypes[ext]; ok {
		return t
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		return fileType{
			contentType:  []string{ct},
			compressible: strings.HasPrefix(ct, "text/") || strings.Contains(ct, "+xml") || strings.Contains(ct, "+json"),
		}
	}
	return octetStream
}

var (
	cacheImmutable  = []string{"public, max-age=31536000, immutable"}
	cacheNoCache    = []string{"no-cache"}
	cacheRevalidate = []string{"public, max-age=0, must-revalidate"}
	cacheNoStore    = []string{"no-store"}
	nosniff         = []string{"nosniff"}
	varyEncoding    = []string{"Accept-Encoding"}
	gzipEncoding    = []string{"gzip"}
	brEncoding      = []string{"br"}
	textPlain       = []string{"text/plain; charset=utf-8"}
	allowGetHead    = []string{"GET, HEAD"}
)

const (
	headerNosniff    = "X-Content-Type-Options"
	headerETag       = "Etag" // the canonical spelling net/http itself reads
	headerCacheCtl   = "Cache-Control"
	headerLastMod    = "Last-Modified"
	headerVary       = "Vary"
	headerCType      = "Content-Type"
	headerCLength    = "Content-Length"
	headerCEncoding  = "Content-Encoding"
	headerLocation   = "Location"
	headerAllow      = "Allow"
	headerINM        = "If-None-Match"
	headerIMS        = "If-Modified-Since"
	headerRange      = "Range"
	headerIfMatch    = "If-Match"
	headerIUS        = "If-Unmodified-Since"
	headerAcceptEnc  = "Accept-Encoding"
	headerFetchMode  = "Sec-Fetch-Mode"
	nextStaticPrefix = "_next/static/"
)

// cacheControlFor picks the Cache-Control of a file served with status 200.
// HTML is always revalidated: it names the assets, so a stale page would pin
// old ones. Only names that carry a content hash may be cached for good.
func cacheControlFor(p string, t fileType) []string {
	switch {
	case t.html:
		return cacheNoCache
	case fingerprinted(p):
		return cacheImmutable
	default:
		return cacheRevalidate
	}
}

// fingerprinted reports whether the file name carries a content hash, as
// bundlers write them: Vite "index-BxYz12ab.js", webpack and Parcel
// "main.3f2a1b9c.js", Astro "index.Cx1_9aBq.css", or anything under Next.js's
// _next/static/ (all of it build-scoped). A false "yes" would pin a file in
// browsers for a year, so the test prefers to miss a hash over inventing one.
func fingerprinted(p string) bool {
	if strings.HasPrefix(p, nextStaticPrefix) {
		return true
	}
	base := path.Base(p)
	dot := strings.LastIndexByte(base, '.')
	if dot <= 0 {
		return false
	}
	stem := base[:dot]
	// A segment after the last '-' or '.', of hash characters other than '-'.
	if i := strings.LastIndexAny(stem, "-."); i > 0 {
		seg := stem[i+1:]
		if len(seg) >= 8 && allHashChars(seg, false) && hashLike(seg) {
			return true
		}
	}
	// Vite's default 8-character hash is base64url and may itself hold '-'.
	if n := len(stem); n > 9 && (stem[n-9] == '-' || stem[n-9] == '.') {
		seg := stem[n-8:]
		if allHashChars(seg, true) && hashLike(seg) {
			return true
		}
	}
	return false
}

func allHashChars(s string, dash bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || dash && c == '-') {
			return false
		}
	}
	return true
}

// hashLike tells a hash from a word: digits mixed with letters, or (for
// 8-character base64 hashes without digits) mixed case that does not read as
// CamelCase words such as "SemiBold".
func hashLike(s string) bool {
	var digit, upper, lower bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		}
	}
	if digit {
		return upper || lower
	}
	return len(s) == 8 && upper && lower && !camelWords(s)
}

// camelWords reports whether s is words like "SemiBold": each starting with
// one capital followed by at least two lowercase letters.
func camelWords(s string) bool {
	i := 0
	for i < len(s) {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
		j := i + 1
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		if j-i < 3 {
			return false
		}
		i = j
	}
	return true
}
