// Package sitehost serves published deployments over HTTP, choosing the site
// by the request's host name:
//
//   - {siteLabel}.{sites domain}: that deployment, forever the same. A
//     site label contains "--" and is not the deployment's id, which is
//     the key to its status and log (libra.NewSiteLabel);
//   - {projectHost}.{sites domain}: the project's current deployment, where
//     projectHost is the project id in lower case, without "--";
//   - any other name that a project has mapped as its custom domain.
//
// Files come from the artifact store through each deployment's manifest, and
// only those: nothing else on disk is reachable, and directories are never
// listed. Hot files are held in memory with their response headers computed
// in advance, and host-to-deployment lookups are cached, so a request for a
// cached file does no I/O, no allocation and, on a site without _headers,
// takes no lock.
package sitehost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Resolver finds what a host name serves. libra.Store implements it. Each
// method returns an error wrapping libra.ErrNotFound when nothing is
// published there.
type Resolver interface {
	SiteByLabel(ctx context.Context, siteLabel string) (deploymentID, manifest string, err error)
	SiteByProject(ctx context.Context, projectHost string) (deploymentID, manifest string, err error)
	SiteByDomain(ctx context.Context, domain string) (deploymentID, manifest string, err error)
}

// Config configures a Host. Resolver and Artifacts are required.
type Config struct {
	// SitesDomain is the domain under which deployments and projects get
	// their host names; default "localhost", which browsers resolve for
	// every subdomain without any DNS set-up.
	SitesDomain string
	Resolver    Resolver
	Artifacts   libra.ArtifactStore
	// CacheBytes bounds the memory holding file contents; default 64 MiB.
	CacheBytes int64
	// SiteBytes bounds the memory holding loaded sites (parsed manifests
	// and rules, estimated); default 64 MiB.
	SiteBytes int64
	// AliasTTL is how long a host name's lookup is trusted before it is
	// asked again; default 1s. Invalidate makes this process see a change
	// at once; other processes see it within AliasTTL, or sooner when the
	// store tells them (Forget, ForgetAll: libra.SiteEvents).
	AliasTTL time.Duration
	// APIHosts are the API's own host names (API_HOSTS): always the API,
	// never a site, whatever a project has attached.
	APIHosts []string
	Logger   *slog.Logger
}

const (
	defaultCacheBytes = 64 << 20
	defaultSiteBytes  = 64 << 20
	defaultAliasTTL   = time.Second
	// maxSites bounds the parsed manifests kept; each costs a few hundred
	// bytes per file.
	maxSites = 512
	// maxAliases and maxAliasBytes bound cached host names, including
	// names that serve nothing, which anyone can invent: by count, and by
	// the bytes of the names themselves (issue 8: 400 names of 1 MB each
	// once held 1.2 GB).
	maxAliases    = 1 << 14
	maxAliasBytes = 4 << 20
	// aliasOverhead is an entry's memory beside its names: the entry, its
	// state and the map's node.
	aliasOverhead = 256
	// maxHostHeader is the longest Host header that can name a host:
	// MaxDomainLen, a trailing dot, IPv6 brackets and ":65535". Longer
	// ones are refused before they are parsed or cached.
	maxHostHeader = libra.MaxDomainLen + len(".[]:65535")
	// lookupTimeout bounds one resolver query plus manifest load, which
	// may serve many waiting requests and so does not stop when the
	// request that started it goes away.
	lookupTimeout = 30 * time.Second
)

var (
	_ http.Handler = (*Host)(nil)
	_ Resolver     = libra.Store(nil)
)

// Host is the site host: an http.Handler for the requests IsSiteHost claims.
type Host struct {
	sitesDomain string
	suffix      string // "." + sitesDomain
	hosts       *libra.HostPolicy
	resolver    Resolver
	artifacts   libra.ArtifactStore
	paths       pather
	log         *slog.Logger

	aliases *aliasCache
	sites   *siteCache
	blobs   *blobCache
}

// pather is implemented by stores whose blobs are files (artifact/fs):
// large files are then sent from the file, by sendfile, with ranges.
type pather interface {
	Path(digest string) (string, error)
}

// New returns a Host. It panics without a Resolver or Artifacts, which are
// wiring mistakes rather than run-time conditions.
func New(cfg Config) *Host {
	if cfg.Resolver == nil || cfg.Artifacts == nil {
		panic("sitehost: Config needs a Resolver and Artifacts")
	}
	domain := libra.NormalizeDomain(stripPort(strings.TrimSpace(cfg.SitesDomain)))
	if domain == "" {
		domain = "localhost"
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = defaultCacheBytes
	}
	if cfg.SiteBytes <= 0 {
		cfg.SiteBytes = defaultSiteBytes
	}
	if cfg.AliasTTL <= 0 {
		cfg.AliasTTL = defaultAliasTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Host{
		sitesDomain: domain,
		suffix:      "." + domain,
		hosts:       libra.NewHostPolicy(domain, cfg.APIHosts),
		resolver:    cfg.Resolver,
		artifacts:   cfg.Artifacts,
		log:         cfg.Logger.With("component", "sitehost"),
		sites:       newSiteCache(maxSites, cfg.SiteBytes),
	}
	h.aliases = newAliasCache(cfg.AliasTTL, h.classify, h.resolve)
	h.paths, _ = cfg.Artifacts.(pather)
	h.blobs = newBlobCache(cfg.CacheBytes, func(ctx context.Context, f *file) ([]byte, error) {
		return readBlob(ctx, h.artifacts, f)
	})
	return h
}

// SitesDomain returns the normalized sites domain.
func (h *Host) SitesDomain() string { return h.sitesDomain }

// hostKind is what a host name addresses.
type hostKind int

const (
	kindAPI        hostKind = iota // API_HOSTS, the sites domain itself, an IP, localhost
	kindDeployment                 // {siteLabel}.{sites domain}: has "--"
	kindProject                    // {projectHost}.{sites domain}: no "--"
	kindReserved                   // other names under the sites domain: serve nothing
	kindDomain                     // anything else: maybe a custom domain
	kindInvalid                    // no host name: longer than DNS allows
)

// invalidHost stands for every Host header too long to be a host name. It is
// never cached, so such headers cost no memory once answered.
var invalidHost = &aliasEntry{kind: kindInvalid}

// classify parses a Host header. name is the normalized host name; label is
// the part before the sites domain for names under it.
func (h *Host) classify(host string) (kind hostKind, name, label string) {
	name = stripPort(host)
	if hasUpper(name) {
		name = strings.ToLower(name)
	}
	name = strings.TrimSuffix(name, ".")
	switch {
	case h.hosts.IsAPIHost(name):
		// Checked first: an API host may even be under the sites domain.
		return kindAPI, name, ""
	case name == "" || name == h.sitesDomain || name == "localhost":
		return kindAPI, name, ""
	case strings.HasSuffix(name, h.suffix):
		label = name[:len(name)-len(h.suffix)]
		// "--" splits the two namespaces, and nothing crosses it: a name
		// that serves no deployment never falls back to a project, whose
		// id someone else chose (issue 8).
		switch {
		case strings.Contains(label, libra.SiteLabelSeparator):
			if libra.IsSiteLabel(label) {
				return kindDeployment, name, label
			}
		case projectLabel(label):
			return kindProject, name, label
		}
		return kindReserved, name, label
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return kindAPI, name, ""
	}
	return kindDomain, name, ""
}

// stripPort drops ":port" and the brackets of an IPv6 literal.
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host[:i], ':') < 0 {
		return host[:i]
	}
	return host
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// projectLabel accepts what a lower-cased project id can be as one label.
// Project ids may hold '_', which host names tolerate in practice.
func projectLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// IsSiteHost reports whether a request for host belongs to the site host
// rather than the API. The rule:
//
//   - API_HOSTS, the sites domain itself, "localhost" and IP addresses: the
//     API;
//   - every name under the sites domain: a site (one that may not exist:
//     such names are reserved for sites, so the API never answers there);
//   - any other name: a site only when a project has it as its verified
//     custom domain (a pending one is an unknown host). The answer is cached like any alias lookup, so the API's own
//     public host name costs one query per AliasTTL, and a resolver error
//     counts as "not a site".
func (h *Host) IsSiteHost(host string) bool {
	e := h.aliases.entry(host)
	switch e.kind {
	case kindAPI, kindInvalid:
		// An invalid name goes to the API, which refuses it in the
		// error format of the API.
		return false
	case kindDomain:
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		defer cancel()
		s, err := h.aliases.get(ctx, e)
		if err != nil {
			h.log.Warn("custom domain lookup failed", "host", e.name, "error", err)
			return false
		}
		return s != nil
	}
	return true
}

// Invalidate drops the cached lookups that a new production deployment of
// the project changes: its alias, every custom domain (which project a
// domain belongs to is not known here, and domains are few) and the
// project's stable aliases, {name}--{projectHost} (a publish, a delete or a
// project's deletion may move them). Requests after Invalidate returns see
// the new deployment. Given a site label or a stable alias's label, it drops
// that name's lookup.
func (h *Host) Invalidate(projectHost string) {
	host := strings.ToLower(projectHost)
	alias := host + h.suffix
	stable := libra.SiteLabelSeparator + host
	h.aliases.invalidate(func(e *aliasEntry) bool {
		return e.kind == kindDomain || e.name == alias ||
			e.kind == kindDeployment && strings.HasSuffix(e.label, stable)
	})
}

var _ libra.SiteCache = (*Host)(nil)

// Forget drops the cached lookups that one production flip, made on any
// node, changed (libra.SiteCache): a project's alias with its custom
// domains, one deployment's host, or one custom domain.
func (h *Host) Forget(c libra.SiteChange) {
	switch {
	case c.ProjectHost != "":
		h.Invalidate(c.ProjectHost)
	case c.SiteLabel != "":
		h.forgetName(strings.ToLower(c.SiteLabel) + h.suffix)
	case c.Domain != "":
		h.forgetName(libra.NormalizeDomain(c.Domain))
	}
}

// ForgetAll drops every cached lookup: flips may have been missed.
func (h *Host) ForgetAll() {
	h.aliases.invalidate(func(*aliasEntry) bool { return true })
}

func (h *Host) forgetName(name string) {
	h.aliases.invalidate(func(e *aliasEntry) bool { return e.name == name })
}

// lookup returns the site that a Host header value addresses, nil when none.
func (h *Host) lookup(ctx context.Context, host string) (*site, error) {
	e := h.aliases.entry(host)
	if e.kind == kindInvalid {
		return nil, nil
	}
	return h.aliases.get(ctx, e)
}

func (h *Host) resolve(ctx context.Context, e *aliasEntry) (*site, error) {
	kind, name, label := e.kind, e.name, e.label
	var id, manifest string
	var err error
	switch kind {
	case kindDeployment:
		id, manifest, err = h.resolver.SiteByLabel(ctx, label)
	case kindProject:
		id, manifest, err = h.resolver.SiteByProject(ctx, label)
	case kindDomain:
		// Anyone can send any Host header; only a name that could have
		// been registered as a custom domain is worth a query.
		if h.hosts.CheckCustomDomain(name) != nil {
			return nil, nil
		}
		id, manifest, err = h.resolver.SiteByDomain(ctx, name)
	default:
		return nil, nil
	}
	if errors.Is(err, libra.ErrNotFound) || err == nil && manifest == "" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", name, err)
	}
	key := id + " " + manifest
	if s := h.sites.get(key); s != nil {
		return s, nil
	}
	s, err := h.loadSite(ctx, id, manifest)
	if err != nil {
		return nil, err
	}
	if evicted := h.sites.put(key, s); len(evicted) > 0 {
		h.aliases.forget(evicted)
	}
	return s, nil
}

// aliasCache maps Host header values to sites for AliasTTL. It is keyed by
// the header exactly as received, so that a hit costs one map lookup and no
// parsing; spellings of one name (case, port) are cached separately.
//
// Expired entries keep serving while one request refreshes them, and keep
// serving if the refresh fails, so a slow or briefly unavailable database
// neither stalls nor breaks sites that were already being served.
type aliasCache struct {
	ttl      time.Duration
	epoch    time.Time
	classify func(host string) (hostKind, string, string)
	resolve  func(ctx context.Context, e *aliasEntry) (*site, error)

	m     sync.Map // raw host -> *aliasEntry
	size  atomic.Int64
	bytes atomic.Int64 // the entries' costs
	trims sync.Mutex
}

type aliasEntry struct {
	kind  hostKind
	name  string // normalized host name
	label string // the part before the sites domain
	cost  int64  // bytes it holds, counted in aliasCache.bytes
	state atomic.Pointer[aliasState]

	mu   sync.Mutex // guards call and gen
	call *aliasCall
	gen  uint64
}

type aliasState struct {
	site    *site
	expires time.Duration // since aliasCache.epoch, on the monotonic clock
}

type aliasCall struct {
	done chan struct{}
	site *site
	err  error
}

func newAliasCache(ttl time.Duration, classify func(string) (hostKind, string, string), resolve func(context.Context, *aliasEntry) (*site, error)) *aliasCache {
	return &aliasCache{ttl: ttl, epoch: time.Now(), classify: classify, resolve: resolve}
}

func (c *aliasCache) now() time.Duration { return time.Since(c.epoch) }

// entry returns the entry for a raw Host value, classifying it on first
// sight; invalidHost, uncached, for one longer than a host name can be.
func (c *aliasCache) entry(host string) *aliasEntry {
	if len(host) > maxHostHeader {
		return invalidHost
	}
	if v, ok := c.m.Load(host); ok {
		return v.(*aliasEntry)
	}
	kind, name, label := c.classify(host)
	if len(name) > libra.MaxDomainLen {
		return invalidHost
	}
	e := &aliasEntry{kind: kind, name: strings.Clone(name), label: strings.Clone(label),
		cost: int64(len(host)+len(name)+len(label)) + aliasOverhead}
	if v, loaded := c.m.LoadOrStore(strings.Clone(host), e); loaded {
		return v.(*aliasEntry)
	}
	n, b := c.size.Add(1), c.bytes.Add(e.cost)
	if n > maxAliases || b > maxAliasBytes {
		c.trim()
	}
	return e
}

// trim drops an arbitrary eighth of the entries (map order is random):
// cheap, and a dropped name costs only one more lookup.
func (c *aliasCache) trim() {
	if !c.trims.TryLock() {
		return // another request is already trimming
	}
	defer c.trims.Unlock()
	n := maxAliases / 8
	c.m.Range(func(k, _ any) bool {
		if v, ok := c.m.LoadAndDelete(k); ok {
			c.size.Add(-1)
			c.bytes.Add(-v.(*aliasEntry).cost)
		}
		n--
		return n > 0
	})
}

func (c *aliasCache) get(ctx context.Context, e *aliasEntry) (*site, error) {
	st := e.state.Load()
	if st != nil && c.now() < st.expires {
		return st.site, nil
	}
	e.mu.Lock()
	if cl := e.call; cl != nil {
		e.mu.Unlock()
		if st != nil {
			return st.site, nil // stale while another request refreshes
		}
		select {
		case <-cl.done:
			return cl.site, cl.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if st2 := e.state.Load(); st2 != nil && c.now() < st2.expires {
		e.mu.Unlock()
		return st2.site, nil
	}
	cl := &aliasCall{done: make(chan struct{})}
	e.call = cl
	gen := e.gen
	e.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
	s, err := c.resolve(fctx, e)
	cancel()
	return c.settle(e, cl, gen, st, s, err)
}

// settle records a refresh's answer s, err, unless Invalidate ran since it
// started (gen), falling back to the stale state st when it failed, and
// hands it to the requests waiting on cl.
func (c *aliasCache) settle(e *aliasEntry, cl *aliasCall, gen uint64, st *aliasState, s *site, err error) (*site, error) {
	e.mu.Lock()
	switch {
	case e.gen != gen:
		// Invalidated meanwhile: the answer may predate the change, so it
		// is not kept (the requests that waited for it asked before).
	case err != nil && st != nil:
		s, err = st.site, nil
		e.state.Store(&aliasState{site: st.site, expires: c.now() + c.ttl})
	case err == nil:
		e.state.Store(&aliasState{site: s, expires: c.now() + c.ttl})
	}
	if e.call == cl {
		e.call = nil
	}
	cl.site, cl.err = s, err
	close(cl.done)
	e.mu.Unlock()
	return s, err
}

// forget drops every entry's hold on the sites the site cache evicted, so
// that they are freed; those names load their site again when next asked.
// It walks the whole cache, which only a site load beyond the site budget
// does.
func (c *aliasCache) forget(evicted []*site) {
	c.m.Range(func(_, v any) bool {
		e := v.(*aliasEntry)
		if st := e.state.Load(); st != nil && st.site != nil && slices.Contains(evicted, st.site) {
			e.state.CompareAndSwap(st, nil)
		}
		return true
	})
}

func (c *aliasCache) invalidate(match func(e *aliasEntry) bool) {
	c.m.Range(func(_, v any) bool {
		e := v.(*aliasEntry)
		if match(e) {
			e.mu.Lock()
			e.gen++
			e.call = nil
			e.state.Store(nil)
			e.mu.Unlock()
		}
		return true
	})
}

// siteCache keeps loaded sites by deployment and manifest, least recently
// loaded out first, within a count and a byte budget. It is used on alias
// refreshes only, never per request. Alias entries point at sites too; an
// eviction makes them let go (aliasCache.forget), so an evicted site is
// freed once no request is using it.
type siteCache struct {
	mu       sync.Mutex
	max      int
	maxBytes int64
	used     int64
	m        map[string]*site
	order    []string
}

func newSiteCache(max int, maxBytes int64) *siteCache {
	return &siteCache{max: max, maxBytes: maxBytes, m: map[string]*site{}}
}

func (c *siteCache) get(key string) *site {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// put keeps s, evicting the oldest sites to make room, and returns those;
// a site larger than the whole budget is still kept, alone.
func (c *siteCache) put(key string, s *site) (evicted []*site) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return nil
	}
	for len(c.order) > 0 && (len(c.order) >= c.max || c.used+s.cost > c.maxBytes) {
		old := c.m[c.order[0]]
		evicted = append(evicted, old)
		c.used -= old.cost
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[key] = s
	c.order = append(c.order, key)
	c.used += s.cost
	return evicted
}

// stats reports the cache's size, for tests.
func (c *siteCache) stats() (sites int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m), c.used
}
