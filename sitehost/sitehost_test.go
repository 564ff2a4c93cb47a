package sitehost

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	libra "github.com/libra-deploy/libra-deploy"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
)

// memResolver is a Resolver over maps, counting its queries.
type memResolver struct {
	mu          sync.Mutex
	deployments map[string]string // site label (also the id) -> manifest
	projects    map[string]string // project host -> deployment id
	domains     map[string]string // custom domain -> deployment id
	fail        error
	queries     atomic.Int64
}

func newMemResolver() *memResolver {
	return &memResolver{deployments: map[string]string{}, projects: map[string]string{}, domains: map[string]string{}}
}

func (m *memResolver) SiteByLabel(ctx context.Context, label string) (string, string, error) {
	m.queries.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return "", "", m.fail
	}
	// The tests' deployments are keyed by their site label, which also
	// stands as their id.
	if man, ok := m.deployments[label]; ok {
		return label, man, nil
	}
	return "", "", fmt.Errorf("site label %s: %w", label, libra.ErrNotFound)
}

func (m *memResolver) SiteByProject(ctx context.Context, host string) (string, string, error) {
	m.queries.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return "", "", m.fail
	}
	if id, ok := m.projects[host]; ok {
		return id, m.deployments[id], nil
	}
	return "", "", fmt.Errorf("project %s: %w", host, libra.ErrNotFound)
}

func (m *memResolver) SiteByDomain(ctx context.Context, domain string) (string, string, error) {
	m.queries.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return "", "", m.fail
	}
	if id, ok := m.domains[domain]; ok {
		return id, m.deployments[id], nil
	}
	return "", "", fmt.Errorf("domain %s: %w", domain, libra.ErrNotFound)
}

func (m *memResolver) set(fn func(m *memResolver)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m)
}

// env is a site host over a real artifact store on disk, behind a real
// listener.
type env struct {
	t      *testing.T
	store  *artifactfs.Store
	res    *memResolver
	host   *Host
	srv    *httptest.Server
	client *http.Client
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	store, err := artifactfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res := newMemResolver()
	cfg.Resolver, cfg.Artifacts = res, store
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := New(cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// No transparent gzip: the tests look at what the server really sent.
	client := &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &env{t: t, store: store, res: res, host: h, srv: srv, client: client}
}

// publish stores files and their manifest, and registers a deployment.
func (e *env) publish(files map[string]string) (id string) {
	e.t.Helper()
	plain := make(map[string]encodedFile, len(files))
	for p, content := range files {
		plain[p] = encodedFile{content: content}
	}
	return e.publishEncoded(plain)
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(method, host, path string, header map[string]string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, string(b)}
}

func (e *env) get(host, path string) resp { return e.do(http.MethodGet, host, path, nil) }

const (
	jsName   = "assets/index-BxYz12ab.js"
	jsBody   = "console.log('fingerprinted');"
	notFound = "<h1>custom 404</h1>"
)

func staticSite() map[string]string {
	return map[string]string{
		"index.html":             "<h1>home</h1>",
		"about.html":             "<h1>about</h1>",
		"docs/index.html":        "<h1>docs</h1>",
		"docs/intro.html":        "<h1>intro</h1>",
		"blog.html":              "<h1>blog page</h1>",
		"blog/index.html":        "<h1>blog index</h1>",
		"404.html":               notFound,
		"docs/404.html":          "<h1>docs 404</h1>",
		jsName:                   jsBody,
		"assets/plain.js":        "console.log('plain');",
		"assets/app.mjs":         "export {};",
		"assets/style.css":       "body{}",
		"logo.svg":               "<svg/>",
		"data.json":              "{}",
		"app.wasm":               "\x00asm",
		"font.woff2":             "wOF2",
		"img.webp":               "RIFF",
		"img.avif":               "avif",
		"favicon.ico":            "ico",
		"robots.txt":             "User-agent: *",
		"assets/app.js.map":      "{}",
		"LICENSE":                "MIT",
		".env":                   "SECRET=1",
		".git/config":            "[core]",
		".well-known/acme":       "token",
		"_headers":               "/*\n  X-Test: yes\n",
		"_redirects":             "/old /about 301\n",
		"wrangler.jsonc":         `{"name": "x"}`,
		"dir with space/a b.txt": "spaced",
	}
}

func TestServesFiles(t *testing.T) {
	e := newEnv(t, Config{})
	id := e.publish(staticSite())
	host := id + ".localhost:3008"
	tests := []struct {
		path   string
		status int
		body   string
		ctype  string
		cache  string
	}{
		{"/", 200, "<h1>home</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/index.html", 200, "<h1>home</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/about", 200, "<h1>about</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/about.html", 200, "<h1>about</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/about/", 200, "<h1>about</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/docs", 200, "<h1>docs</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/docs/", 200, "<h1>docs</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/docs/intro", 200, "<h1>intro</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/blog", 200, "<h1>blog page</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/blog/", 200, "<h1>blog index</h1>", "text/html; charset=utf-8", "no-cache"},
		{"/" + jsName, 200, jsBody, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/assets/plain.js", 200, "console.log('plain');", "text/javascript; charset=utf-8", "public, max-age=0, must-revalidate"},
		{"/assets/app.mjs", 200, "export {};", "text/javascript; charset=utf-8", "public, max-age=0, must-revalidate"},
		{"/assets/style.css", 200, "body{}", "text/css; charset=utf-8", "public, max-age=0, must-revalidate"},
		{"/logo.svg", 200, "<svg/>", "image/svg+xml", ""},
		{"/data.json", 200, "{}", "application/json; charset=utf-8", ""},
		{"/app.wasm", 200, "\x00asm", "application/wasm", ""},
		{"/font.woff2", 200, "wOF2", "font/woff2", ""},
		{"/img.webp", 200, "RIFF", "image/webp", ""},
		{"/img.avif", 200, "avif", "image/avif", ""},
		{"/favicon.ico", 200, "ico", "image/x-icon", ""},
		{"/robots.txt", 200, "User-agent: *", "text/plain; charset=utf-8", ""},
		{"/assets/app.js.map", 200, "{}", "application/json; charset=utf-8", ""},
		{"/LICENSE", 200, "MIT", "application/octet-stream", ""},
		{"/.well-known/acme", 200, "token", "application/octet-stream", ""},
		{"/dir%20with%20space/a%20b.txt", 200, "spaced", "text/plain; charset=utf-8", ""},
		{"//about", 200, "<h1>about</h1>", "", ""},
		{"/docs/../about", 200, "<h1>about</h1>", "", ""},
		// Missing paths get the nearest 404.html with status 404.
		{"/nope.png", 404, notFound, "text/html; charset=utf-8", "no-cache"},
		{"/nope", 404, notFound, "", ""},
		{"/docs/missing", 404, "<h1>docs 404</h1>", "", ""},
		// Configuration, dotfiles, directories and anything outside the
		// manifest are never served.
		{"/_headers", 404, notFound, "", ""},
		{"/_redirects", 404, notFound, "", ""},
		{"/wrangler.jsonc", 404, notFound, "", ""},
		{"/.env", 404, notFound, "", ""},
		{"/.git/config", 404, notFound, "", ""},
		{"/assets/", 404, notFound, "", ""},
		{"/assets", 404, notFound, "", ""},
		{"/../../../etc/passwd", 404, notFound, "", ""},
		{"/%2e%2e/%2e%2e/etc/passwd", 404, notFound, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := e.get(host, tt.path)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", r.status, tt.status, r.body)
			}
			if r.body != tt.body {
				t.Errorf("body = %q, want %q", r.body, tt.body)
			}
			if tt.ctype != "" && r.header.Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", r.header.Get("Content-Type"), tt.ctype)
			}
			if tt.cache != "" && r.header.Get("Cache-Control") != tt.cache {
				t.Errorf("Cache-Control = %q, want %q", r.header.Get("Cache-Control"), tt.cache)
			}
			if r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", r.header.Get("X-Content-Type-Options"))
			}
		})
	}
}

func TestMethods(t *testing.T) {
	e := newEnv(t, Config{})
	id := e.publish(map[string]string{"index.html": "<p>hello</p>"})
	host := id + ".localhost"
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		r := e.do(m, host, "/", nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d, Allow %q; want 405, \"GET, HEAD\"", m, r.status, r.header.Get("Allow"))
		}
	}
	r := e.do(http.MethodHead, host, "/", nil)
	if r.status != 200 || r.body != "" || r.header.Get("Content-Length") != "12" {
		t.Errorf("HEAD: status %d, body %q, Content-Length %q; want 200, empty, 12", r.status, r.body, r.header.Get("Content-Length"))
	}
	if r.header.Get("Etag") == "" || r.header.Get("Last-Modified") == "" {
		t.Errorf("HEAD lacks validators: %v", r.header)
	}
}

func TestConditionalRequests(t *testing.T) {
	e := newEnv(t, Config{})
	id := e.publish(map[string]string{"index.html": "<p>hello</p>", jsName: jsBody})
	host := id + ".localhost"
	first := e.get(host, "/"+jsName)
	etag, lastMod := first.header.Get("Etag"), first.header.Get("Last-Modified")
	digest, _, _ := e.store.Put(context.Background(), strings.NewReader(jsBody))
	if etag != `"`+digest+`"` {
		t.Fatalf("ETag = %s, want the quoted digest %q", etag, digest)
	}
	lm, err := http.ParseTime(lastMod)
	if err != nil {
		t.Fatalf("Last-Modified %q: %v", lastMod, err)
	}
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"matching etag", map[string]string{"If-None-Match": etag}, 304},
		{"weak etag", map[string]string{"If-None-Match": "W/" + etag}, 304},
		{"etag in list", map[string]string{"If-None-Match": `"other", ` + etag}, 304},
		{"star", map[string]string{"If-None-Match": "*"}, 304},
		{"other etag", map[string]string{"If-None-Match": `"sha256:0000"`}, 200},
		{"other etag wins over date", map[string]string{"If-None-Match": `"x"`, "If-Modified-Since": lastMod}, 200},
		{"same date", map[string]string{"If-Modified-Since": lastMod}, 304},
		{"later date", map[string]string{"If-Modified-Since": lm.Add(time.Hour).Format(http.TimeFormat)}, 304},
		{"earlier date", map[string]string{"If-Modified-Since": lm.Add(-time.Second).Format(http.TimeFormat)}, 200},
		{"bad date", map[string]string{"If-Modified-Since": "yesterday"}, 200},
		{"if-match ok", map[string]string{"If-Match": etag}, 200},
		{"if-match fails", map[string]string{"If-Match": `"x"`}, 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, host, "/"+jsName, tt.header)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d", r.status, tt.status)
			}
			switch tt.status {
			case 304:
				if r.body != "" || r.header.Get("Etag") != etag || r.header.Get("Cache-Control") == "" {
					t.Errorf("304 with body %q, ETag %q, Cache-Control %q", r.body, r.header.Get("Etag"), r.header.Get("Cache-Control"))
				}
				if r.header.Get("Content-Type") != "" {
					t.Errorf("304 describes a body: Content-Type %q", r.header.Get("Content-Type"))
				}
			case 200:
				if r.body != jsBody {
					t.Errorf("body = %q", r.body)
				}
			}
		})
	}
}

func TestRanges(t *testing.T) {
	e := newEnv(t, Config{})
	body := "0123456789abcdefghij"
	id := e.publish(map[string]string{"data.txt": body})
	host := id + ".localhost"
	etag := e.get(host, "/data.txt").header.Get("Etag")
	tests := []struct {
		name, rng, ifRange string
		status             int
		body, contentRange string
	}{
		{"prefix", "bytes=0-4", "", 206, "01234", "bytes 0-4/20"},
		{"suffix", "bytes=-3", "", 206, "hij", "bytes 17-19/20"},
		{"open end", "bytes=15-", "", 206, "fghij", "bytes 15-19/20"},
		{"if-range match", "bytes=0-1", etag, 206, "01", "bytes 0-1/20"},
		{"if-range stale", "bytes=0-1", `"old"`, 200, body, ""},
		{"unsatisfiable", "bytes=50-60", "", 416, "", "bytes */20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Range": tt.rng}
			if tt.ifRange != "" {
				h["If-Range"] = tt.ifRange
			}
			r := e.do(http.MethodGet, host, "/data.txt", h)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d", r.status, tt.status)
			}
			if tt.status != 416 && r.body != tt.body {
				t.Errorf("body = %q, want %q", r.body, tt.body)
			}
			if r.header.Get("Content-Range") != tt.contentRange {
				t.Errorf("Content-Range = %q, want %q", r.header.Get("Content-Range"), tt.contentRange)
			}
			if r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
			}
		})
	}
}

func TestNotFoundHandling(t *testing.T) {
	index := "<div id=root></div>"
	tests := []struct {
		name   string
		files  map[string]string
		path   string
		header map[string]string
		status int
		body   string
	}{
		// No 404.html and an index.html: routes of a single-page app.
		{"auto spa route", map[string]string{"index.html": index}, "/dashboard/settings", nil, 200, index},
		{"auto spa keeps asset 404", map[string]string{"index.html": index}, "/missing.js", nil, 404, "404 page not found\n"},
		{"auto with 404.html", map[string]string{"index.html": index, "404.html": notFound}, "/dashboard", nil, 404, notFound},
		{"auto nothing", map[string]string{"a.txt": "a"}, "/x", nil, 404, "404 page not found\n"},
		// wrangler.jsonc asks for SPA: index.html even with a 404.html.
		{"spa mode", map[string]string{"index.html": index, "404.html": notFound, "wrangler.jsonc": spaConfig}, "/x/y", nil, 200, index},
		{"spa mode html path", map[string]string{"index.html": index, "wrangler.jsonc": spaConfig}, "/x.html", nil, 200, index},
		{"spa mode asset", map[string]string{"index.html": index, "wrangler.jsonc": spaConfig}, "/x.png", nil, 404, "404 page not found\n"},
		{"spa mode navigation", map[string]string{"index.html": index, "wrangler.jsonc": spaConfig}, "/u/john.doe", map[string]string{"Sec-Fetch-Mode": "navigate"}, 200, index},
		{"spa mode toml", map[string]string{"index.html": index, "404.html": notFound, "wrangler.toml": "[assets]\nnot_found_handling = \"single-page-application\"\n"}, "/x", nil, 200, index},
		{"404-page mode", map[string]string{"index.html": index, "404.html": notFound, "wrangler.json": `{"assets":{"not_found_handling":"404-page"}}`}, "/x", nil, 404, notFound},
		{"404-page mode without page", map[string]string{"index.html": index, "wrangler.json": `{"assets":{"not_found_handling":"404-page"}}`}, "/x", nil, 404, "404 page not found\n"},
		{"none mode", map[string]string{"index.html": index, "404.html": notFound, "wrangler.json": `{"assets":{"not_found_handling":"none"}}`}, "/x", nil, 404, "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			id := e.publish(tt.files)
			r := e.do(http.MethodGet, id+".localhost", tt.path, tt.header)
			if r.status != tt.status || r.body != tt.body {
				t.Errorf("got %d %q, want %d %q", r.status, r.body, tt.status, tt.body)
			}
			if r.status == 200 && r.header.Get("Cache-Control") != "no-cache" {
				t.Errorf("fallback page Cache-Control = %q, want no-cache", r.header.Get("Cache-Control"))
			}
		})
	}
}

const spaConfig = `{
  // comments and trailing commas, as wrangler.jsonc allows
  "name": "app", /* inline */
  "assets": {
    "directory": "./dist",
    "not_found_handling": "single-page-application",
  },
}`

func TestRedirectsFile(t *testing.T) {
	e := newEnv(t, Config{})
	files := staticSite()
	files["_redirects"] = `
# comments are ignored
/old            /about          301
/temp           /about
/blog/*         /posts/:splat   302
/go/*           /:splat         307
/ext/*          https://example.com/x/:splat 308
/news/:year/:slug /articles/:year/:slug 301
/users/:id      /about.html?u=:id  200
/about          /docs/          200
/robots.txt     /about.html     200!
/gone           /404.html       404
/app/*          /index.html     200
/bad            /x              299
/cond id=:id    /x              301
/proxy/*        https://example.com/:splat 200
`
	id := e.publish(files)
	host := id + ".localhost"
	tests := []struct {
		path     string
		status   int
		location string
		body     string
	}{
		{"/old", 301, "/about", ""},
		{"/old/", 301, "/about", ""},
		{"/old?x=1&y=2", 301, "/about?x=1&y=2", ""},
		{"/temp", 302, "/about", ""},
		{"/blog/2024/post", 302, "/posts/2024/post", ""},
		{"/blog", 302, "/posts/", ""},
		{"/go/docs", 307, "/docs", ""},
		{"/go//evil.com", 307, "/evil.com", ""},
		{"/go/%5Cevil.com", 307, "/%5Cevil.com", ""},
		{"/ext/a%20b/c", 308, "https://example.com/x/a%20b/c", ""},
		{"/news/2024/hello", 301, "/articles/2024/hello", ""},
		{"/users/42", 200, "", "<h1>about</h1>"},
		// Shadowed: about.html exists, so the 200 rule does not apply.
		{"/about", 200, "", "<h1>about</h1>"},
		// Forced with '!': applies although robots.txt exists.
		{"/robots.txt", 200, "", "<h1>about</h1>"},
		{"/gone", 404, "", notFound},
		{"/app/deep/route", 200, "", "<h1>home</h1>"},
		// A shadowing rewrite leaves real files alone.
		{"/" + jsName, 200, "", jsBody},
		// Skipped rules do nothing.
		{"/bad", 404, "", notFound},
		{"/cond", 404, "", notFound},
		{"/proxy/x", 404, "", notFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := e.get(host, tt.path)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", r.status, tt.status, r.body)
			}
			if got := r.header.Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			if tt.location == "" && r.body != tt.body {
				t.Errorf("body = %q, want %q", r.body, tt.body)
			}
		})
	}
}

func TestHeadersFile(t *testing.T) {
	e := newEnv(t, Config{})
	files := staticSite()
	files["_headers"] = `# site-wide
/*
  X-Frame-Options: DENY
  Referrer-Policy: no-referrer

/assets/*
  Cache-Control: public, max-age=60
  X-Asset: :splat
  Content-Length: 3

/about
  X-Page: about
  X-Frame-Options: SAMEORIGIN
  ! Referrer-Policy

/docs/:page
  X-Doc: :page
https://other.example/*
  X-Never: 1
`
	id := e.publish(files)
	host := id + ".localhost"
	tests := []struct {
		path   string
		status int
		want   map[string]string // "" means absent
	}{
		{"/", 200, map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Page": "", "X-Never": ""}},
		{"/" + jsName, 200, map[string]string{"Cache-Control": "public, max-age=60", "X-Asset": "index-BxYz12ab.js", "Content-Length": fmt.Sprint(len(jsBody))}},
		{"/about", 200, map[string]string{"X-Page": "about", "X-Frame-Options": "DENY, SAMEORIGIN", "Referrer-Policy": ""}},
		{"/about/", 200, map[string]string{"X-Page": "about"}},
		{"/docs/intro", 200, map[string]string{"X-Doc": "intro"}},
		{"/missing", 404, map[string]string{"X-Frame-Options": "DENY"}},
		{"/_headers", 404, map[string]string{"X-Frame-Options": "DENY"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := e.get(host, tt.path)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d", r.status, tt.status)
			}
			if tt.path == "/_headers" && strings.Contains(r.body, "X-Frame-Options") {
				t.Errorf("_headers itself was served: %q", r.body)
			}
			for k, v := range tt.want {
				if got := strings.Join(r.header.Values(k), ", "); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	// Custom headers stay on 304s too.
	etag := e.get(host, "/about").header.Get("Etag")
	r := e.do(http.MethodGet, host, "/about", map[string]string{"If-None-Match": etag})
	if r.status != 304 || r.header.Get("X-Page") != "about" {
		t.Errorf("304: status %d, X-Page %q", r.status, r.header.Get("X-Page"))
	}
}

func TestGzip(t *testing.T) {
	e := newEnv(t, Config{})
	big := strings.Repeat("function hello() { return 'hello world'; }\n", 200)
	id := e.publish(map[string]string{"app.js": big, "small.js": "x()", "img.png": strings.Repeat("p", 4000)})
	host := id + ".localhost"

	plain := e.get(host, "/app.js")
	if plain.body != big || plain.header.Get("Content-Encoding") != "" || plain.header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("identity: encoding %q, Vary %q, %d bytes", plain.header.Get("Content-Encoding"), plain.header.Get("Vary"), len(plain.body))
	}
	for _, ae := range []string{"gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8", "*"} {
		r := e.do(http.MethodGet, host, "/app.js", map[string]string{"Accept-Encoding": ae})
		if r.header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q", ae, r.header.Get("Content-Encoding"))
		}
		if r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) || len(r.body) >= len(big)/4 {
			t.Errorf("gzip body %d bytes, Content-Length %s", len(r.body), r.header.Get("Content-Length"))
		}
		zr, err := gzip.NewReader(strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || string(got) != big {
			t.Errorf("gunzipped %d bytes (err %v), want the original", len(got), err)
		}
		if r.header.Get("Etag") == plain.header.Get("Etag") {
			t.Error("gzip and identity share an ETag")
		}
		// Either validator revalidates.
		for _, tag := range []string{r.header.Get("Etag"), plain.header.Get("Etag")} {
			if c := e.do(http.MethodGet, host, "/app.js", map[string]string{"Accept-Encoding": ae, "If-None-Match": tag}); c.status != 304 {
				t.Errorf("If-None-Match %s: %d", tag, c.status)
			}
		}
	}
	for _, ae := range []string{"gzip;q=0", "deflate", "*, gzip;q=0"} {
		if r := e.do(http.MethodGet, host, "/app.js", map[string]string{"Accept-Encoding": ae}); r.header.Get("Content-Encoding") != "" || r.body != big {
			t.Errorf("Accept-Encoding %q: got encoding %q", ae, r.header.Get("Content-Encoding"))
		}
	}
	// Small files and compressed formats are sent as they are.
	for _, p := range []string{"/small.js", "/img.png"} {
		r := e.do(http.MethodGet, host, p, map[string]string{"Accept-Encoding": "gzip"})
		if r.header.Get("Content-Encoding") != "" || r.header.Get("Vary") != "" {
			t.Errorf("%s: Content-Encoding %q, Vary %q", p, r.header.Get("Content-Encoding"), r.header.Get("Vary"))
		}
	}
	// A range is of the identity representation.
	r := e.do(http.MethodGet, host, "/app.js", map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-7"})
	if r.status != 206 || r.body != big[:8] || r.header.Get("Content-Encoding") != "" {
		t.Errorf("range with gzip: %d %q encoding %q", r.status, r.body, r.header.Get("Content-Encoding"))
	}
}

func TestHostRouting(t *testing.T) {
	e := newEnv(t, Config{SitesDomain: "Sites.Example.COM", AliasTTL: time.Hour})
	v1 := e.publish(map[string]string{"index.html": "v1"})
	other := e.publish(map[string]string{"index.html": "other"})
	e.res.set(func(r *memResolver) {
		r.projects["shop"] = v1
		r.projects["my_app"] = other
		r.domains["www.shop.test"] = v1
	})
	tests := []struct {
		host   string
		status int
		body   string
	}{
		{v1 + ".sites.example.com", 200, "v1"},
		{strings.ToUpper(v1) + ".SITES.example.com:8443", 200, "v1"},
		{v1 + ".sites.example.com.", 200, "v1"},
		{"shop.sites.example.com", 200, "v1"},
		{"my_app.sites.example.com", 200, "other"},
		{"www.shop.test", 200, "v1"},
		{"WWW.Shop.Test:80", 200, "v1"},
		{"nothing.sites.example.com", 404, "no site is published at this address\n"},
		{"a.b.sites.example.com", 404, "no site is published at this address\n"},
		{libra.NewDeploymentID() + ".sites.example.com", 404, "no site is published at this address\n"},
		{libra.NewSiteLabel("shop") + ".sites.example.com", 404, "no site is published at this address\n"},
		{"unknown.test", 404, "no site is published at this address\n"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			r := e.get(tt.host, "/")
			if r.status != tt.status || r.body != tt.body {
				t.Errorf("got %d %q, want %d %q", r.status, r.body, tt.status, tt.body)
			}
		})
	}
}

// The API's own names are never sites, even when the resolver has one as a
// custom domain (attached by hand, or before API_HOSTS named it); nor is
// localhost or anything under it when the sites domain is elsewhere.
func TestAPIHostsAreNeverSites(t *testing.T) {
	e := newEnv(t, Config{SitesDomain: "sites.example.net", APIHosts: []string{"api.example.com", "Deploy.Example.com."}})
	id := e.publish(map[string]string{"index.html": "takeover"})
	e.res.set(func(r *memResolver) {
		for _, d := range []string{"api.example.com", "deploy.example.com", "x.localhost", "shop.example.com"} {
			r.domains[d] = id
		}
	})
	tests := []struct {
		host string
		want bool
	}{
		{"api.example.com", false},
		{"API.EXAMPLE.COM:443", false},
		{"api.example.com.", false},
		{"deploy.example.com", false},
		{"x.localhost", false},
		{"sites.example.net", false},
		{"shop.example.com", true},
		{id + ".sites.example.net", true},
	}
	for _, tt := range tests {
		if got := e.host.IsSiteHost(tt.host); got != tt.want {
			t.Errorf("IsSiteHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestIsSiteHost(t *testing.T) {
	e := newEnv(t, Config{})
	id := e.publish(map[string]string{"index.html": "x"})
	e.res.set(func(r *memResolver) { r.domains["custom.example"] = id })
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", false},
		{"localhost:3008", false},
		{"LOCALHOST:3008", false},
		{"127.0.0.1:3008", false},
		{"[::1]:3008", false},
		{"::1", false},
		{"", false},
		{id + ".localhost:3008", true},
		{"myproject.localhost", true},
		{"unpublished.localhost", true},
		{"a.b.localhost", true},
		{"custom.example", true},
		{"Custom.Example:443", true},
		{"api.example", false},
	}
	for _, tt := range tests {
		if got := e.host.IsSiteHost(tt.host); got != tt.want {
			t.Errorf("IsSiteHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
	// Names that cannot be custom domains never reach the resolver.
	before := e.res.queries.Load()
	for _, h := range []string{"intranet", "bad_name.example", "x.123", "a..b"} {
		if e.host.IsSiteHost(h) {
			t.Errorf("IsSiteHost(%q) = true", h)
		}
	}
	if n := e.res.queries.Load() - before; n != 0 {
		t.Errorf("%d resolver queries for impossible domains", n)
	}
	// "api.example" was asked once and is cached as "not a site".
	before = e.res.queries.Load()
	for range 10 {
		e.host.IsSiteHost("api.example")
	}
	if n := e.res.queries.Load() - before; n != 0 {
		t.Errorf("%d resolver queries for a cached answer", n)
	}
}

func TestAliasInvalidation(t *testing.T) {
	e := newEnv(t, Config{AliasTTL: time.Hour})
	v1 := e.publish(map[string]string{"index.html": "v1"})
	v2 := e.publish(map[string]string{"index.html": "v2"})
	e.res.set(func(r *memResolver) {
		r.projects["proj"] = v1
		r.domains["proj.test"] = v1
	})
	for _, h := range []string{"proj.localhost", "proj.test"} {
		if r := e.get(h, "/"); r.body != "v1" {
			t.Fatalf("%s: %q, want v1", h, r.body)
		}
	}
	queries := e.res.queries.Load()
	for range 20 {
		e.get("proj.localhost", "/")
	}
	if n := e.res.queries.Load() - queries; n != 0 {
		t.Errorf("%d resolver queries within the TTL, want 0", n)
	}

	e.res.set(func(r *memResolver) {
		r.projects["proj"] = v2
		r.domains["proj.test"] = v2
	})
	if r := e.get("proj.localhost", "/"); r.body != "v1" {
		t.Fatalf("before Invalidate: %q, want the cached v1", r.body)
	}
	e.host.Invalidate("PROJ")
	for _, h := range []string{"proj.localhost", "proj.test"} {
		if r := e.get(h, "/"); r.body != "v2" {
			t.Errorf("%s after Invalidate: %q, want v2", h, r.body)
		}
	}
	// The old deployment stays at its own host.
	if r := e.get(v1+".localhost", "/"); r.body != "v1" {
		t.Errorf("immutable host: %q, want v1", r.body)
	}
}

func TestAliasTTL(t *testing.T) {
	e := newEnv(t, Config{AliasTTL: 50 * time.Millisecond})
	v1 := e.publish(map[string]string{"index.html": "v1"})
	v2 := e.publish(map[string]string{"index.html": "v2"})
	e.res.set(func(r *memResolver) { r.projects["proj"] = v1 })
	if r := e.get("proj.localhost", "/"); r.body != "v1" {
		t.Fatalf("%q, want v1", r.body)
	}
	// Another process published v2; this one did not hear of it.
	e.res.set(func(r *memResolver) { r.projects["proj"] = v2 })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := e.get("proj.localhost", "/"); r.body == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alias never converged to v2")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A failing resolver keeps the last good answer (stale on error)...
	e.res.set(func(r *memResolver) { r.fail = errors.New("database is down") })
	time.Sleep(60 * time.Millisecond)
	for range 3 {
		if r := e.get("proj.localhost", "/"); r.status != 200 || r.body != "v2" {
			t.Fatalf("with resolver down: %d %q, want the stale v2", r.status, r.body)
		}
	}
	// ...but has nothing to offer a host it never resolved.
	if r := e.get("fresh.localhost", "/"); r.status != http.StatusServiceUnavailable {
		t.Errorf("unresolved host with resolver down: %d, want 503", r.status)
	}
}

func TestCacheBoundAndLargeFiles(t *testing.T) {
	const budget = 64 << 10
	e := newEnv(t, Config{CacheBytes: budget})
	files := map[string]string{}
	for i := range 40 {
		files[fmt.Sprintf("f%02d.bin", i)] = strings.Repeat(string(rune('a'+i%26)), 3000+i)
	}
	large := strings.Repeat("L", 3*budget) // over the per-item limit: streamed from disk
	files["large.bin"] = large
	id := e.publish(files)
	host := id + ".localhost"
	for round := range 3 {
		for p, want := range files {
			r := e.get(host, "/"+p)
			if r.status != 200 || r.body != want {
				t.Fatalf("round %d %s: %d, %d bytes, want %d", round, p, r.status, len(r.body), len(want))
			}
		}
		if _, used := e.host.blobs.stats(); used > budget {
			t.Fatalf("cache holds %d bytes, budget %d", used, budget)
		}
	}
	items, _ := e.host.blobs.stats()
	if items == 0 || items >= 40 {
		t.Errorf("cache holds %d items; want some but not all of 40", items)
	}
	r := e.do(http.MethodGet, host, "/large.bin", map[string]string{"Range": "bytes=10-19"})
	if r.status != 206 || r.body != large[10:20] {
		t.Errorf("range of a streamed file: %d %q", r.status, r.body)
	}
	r = e.do(http.MethodHead, host, "/large.bin", nil)
	if r.status != 200 || r.header.Get("Content-Length") != fmt.Sprint(len(large)) {
		t.Errorf("HEAD of a streamed file: %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
}

func TestDamagedBlobIsNotServed(t *testing.T) {
	e := newEnv(t, Config{})
	id := e.publish(map[string]string{"index.html": "<p>the real page</p>"})
	digest, _, _ := e.store.Put(context.Background(), strings.NewReader("<p>the real page</p>"))
	p, err := e.store.Path(digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("<p>the fake page</p>"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.get(id+".localhost", "/")
	if r.status != http.StatusInternalServerError || strings.Contains(r.body, "fake") {
		t.Errorf("damaged blob: %d %q, want 500 without the content", r.status, r.body)
	}
	if strings.Contains(r.body, p) || strings.Contains(r.body, "sha256") {
		t.Errorf("error body leaks internals: %q", r.body)
	}
}

func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, Config{CacheBytes: 16 << 10})
	files := map[string]string{}
	for i := range 30 {
		files[fmt.Sprintf("p%d.html", i)] = strings.Repeat(fmt.Sprintf("<p>%d</p>", i), 100+i*10)
	}
	id := e.publish(files)
	host := id + ".localhost"
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				p := fmt.Sprintf("p%d.html", (i*7+w)%30)
				enc := map[string]string{}
				if i%2 == 0 {
					enc["Accept-Encoding"] = "gzip"
				}
				r := e.do(http.MethodGet, host, "/"+p, enc)
				body := r.body
				if r.header.Get("Content-Encoding") == "gzip" {
					zr, err := gzip.NewReader(strings.NewReader(body))
					if err != nil {
						errs <- err.Error()
						return
					}
					b, _ := io.ReadAll(zr)
					body = string(b)
				}
				if r.status != 200 || body != files[p] {
					errs <- fmt.Sprintf("%s: %d, %d bytes", p, r.status, len(body))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// TestEvictedBlobsAreReleased checks that files drop their pointer to an
// evicted blob, so that the memory budget holds in fact, not only in the
// cache's own accounting.
func TestEvictedBlobsAreReleased(t *testing.T) {
	e := newEnv(t, Config{CacheBytes: 8 << 10})
	id := e.publish(map[string]string{"a.txt": strings.Repeat("a", 900), "b.txt": strings.Repeat("b", 900)})
	host := id + ".localhost"
	e.get(host, "/a.txt")
	s, err := e.host.lookup(context.Background(), host)
	if err != nil || s == nil {
		t.Fatalf("lookup: %v", err)
	}
	fa := s.routes["a.txt"]
	if fa.blob.Load() == nil {
		t.Fatal("a.txt not cached after a request")
	}
	// Fill the cache with other content until a.txt's blob goes.
	other := map[string]string{}
	for i := range 30 {
		other[fmt.Sprintf("o%d.txt", i)] = strings.Repeat(fmt.Sprint(i), 500)
	}
	oid := e.publish(other)
	for range 3 {
		for p := range other {
			e.get(oid+".localhost", "/"+p)
		}
	}
	if fa.blob.Load() != nil {
		t.Error("a.txt still points at its blob after eviction")
	}
	if r := e.get(host, "/a.txt"); r.body != strings.Repeat("a", 900) {
		t.Error("a.txt not served again after eviction")
	}
}

// TestHostNamespaces checks that a name with "--" reaches deployments by
// site label only, a name without reaches projects only, and that neither
// falls back to the other (issue 8: a project named like a deleted
// deployment's host took its URL over).
func TestHostNamespaces(t *testing.T) {
	e := newEnv(t, Config{AliasTTL: time.Hour})
	victim := e.publish(map[string]string{"index.html": "victim"})
	evil := e.publish(map[string]string{"index.html": "evil"})
	e.res.set(func(r *memResolver) {
		delete(r.deployments, victim) // the victim deleted its deployment
		// Projects from before "--" was refused, one named exactly like
		// the victim's label.
		r.projects[victim] = evil
		r.projects["old--project"] = evil
		r.projects["xn--bcher-kva"] = evil
		// A deployment keyed by something outside the "--" namespace.
		r.deployments["plain"] = r.deployments[evil]
		r.projects["shop"] = evil
	})
	tests := []struct {
		name, host string
		status     int
		body       string
	}{
		{"deleted deployment's label", victim + ".localhost", 404, "no site is published at this address\n"},
		{"live deployment's label", evil + ".localhost", 200, "evil"},
		{"old project with --", "old--project.localhost", 404, "no site is published at this address\n"},
		{"punycode label", "xn--bcher-kva.localhost", 404, "no site is published at this address\n"},
		{"label without -- is never a deployment", "plain.localhost", 404, "no site is published at this address\n"},
		{"project alias", "shop.localhost", 200, "evil"},
		{"-- but not a host label", "a--b_c.localhost", 404, "no site is published at this address\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(tt.host, "/")
			if r.status != tt.status || r.body != tt.body {
				t.Errorf("GET %s: %d %q, want %d %q", tt.host, r.status, r.body, tt.status, tt.body)
			}
		})
	}
}

// TestAliasCacheBounds: Host headers longer than a host name are never
// cached, and the cache is bounded by bytes as well as entries (issue 8).
func TestAliasCacheBounds(t *testing.T) {
	e := newEnv(t, Config{AliasTTL: time.Hour})
	label63 := strings.Repeat("a", 63)
	tests := []struct {
		name      string
		host      func(i int) string
		n         int
		wantSite  bool // what IsSiteHost answers
		maxCached int64
	}{
		{"over 253 bytes under the sites domain", func(i int) string {
			return fmt.Sprintf("%d%s.localhost", i, strings.Repeat("x", 300))
		}, 1000, false, 0},
		{"over 253 bytes, not under it", func(i int) string {
			return fmt.Sprintf("%d%s.example", i, strings.Repeat(label63+".", 4))
		}, 1000, false, 0},
		{"a megabyte", func(i int) string { return fmt.Sprint(i) + strings.Repeat("y", 1<<20) }, 20, false, 0},
		{"valid 250-byte names", func(i int) string {
			return fmt.Sprintf("%06d%s.localhost", i, strings.Repeat("."+label63[:60], 3)+"."+label63[:47])
		}, 3 * maxAliases, true, maxAliases},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.n {
				h := tt.host(i)
				if got := e.host.IsSiteHost(h); got != tt.wantSite {
					t.Fatalf("IsSiteHost(%d bytes) = %v, want %v", len(h), got, tt.wantSite)
				}
				if s, err := e.host.lookup(context.Background(), h); s != nil || err != nil {
					t.Fatalf("lookup(%d bytes) = %v, %v", len(h), s, err)
				}
			}
			n, b := e.host.aliases.size.Load(), e.host.aliases.bytes.Load()
			t.Logf("%d hosts asked: %d cached, %d bytes", tt.n, n, b)
			if n > tt.maxCached || b > maxAliasBytes {
				t.Errorf("%d entries, %d bytes cached; want at most %d entries and %d bytes", n, b, tt.maxCached, maxAliasBytes)
			}
		})
	}
}

// TestHeaderMemoBounded: the _headers memo keeps no more than its byte
// budget of request paths, which clients make up.
func TestHeaderMemoBounded(t *testing.T) {
	e := newEnv(t, Config{})
	id := e.publish(map[string]string{"index.html": "x", "_headers": "/*\n  X-Frame-Options: DENY\n"})
	for i := range 200 {
		p := fmt.Sprintf("/%d/%s", i, strings.Repeat("p", 8<<10))
		if r := e.get(id+".localhost", p); r.header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("GET %d: X-Frame-Options %q", i, r.header.Get("X-Frame-Options"))
		}
	}
	s, err := e.host.lookup(context.Background(), id+".localhost")
	if err != nil || s == nil {
		t.Fatal(s, err)
	}
	s.hdrMu.RLock()
	n, b := len(s.hdrMemo), s.hdrMemoBytes
	s.hdrMu.RUnlock()
	t.Logf("memo: %d paths, %d bytes", n, b)
	if b > maxHeaderMemoBytes || n == 0 {
		t.Errorf("memo holds %d paths, %d bytes; want some, within %d bytes", n, b, maxHeaderMemoBytes)
	}
}

// TestHeadersMatchFilePath: _headers rules apply by the request path and by
// the path of the file that answers it, so a pretty URL, a fallback or an
// error page carries the headers its file was given (issue 8: /secret
// served secret.html without its X-Frame-Options and CSP).
func TestHeadersMatchFilePath(t *testing.T) {
	e := newEnv(t, Config{})
	pages := e.publish(map[string]string{
		"index.html":      "home",
		"secret.html":     "secret",
		"docs/index.html": "docs",
		"404.html":        "not here",
		"_headers": `/secret.html
  X-Frame-Options: DENY
  Content-Security-Policy: default-src 'none'
/docs/index.html
  X-Docs: file
/404.html
  X-Error-Page: yes
/gone
  X-Request-Rule: yes
`,
	})
	spa := e.publish(map[string]string{
		"index.html": "shell",
		"app.js":     "run()",
		"_headers":   "/index.html\n  X-App-Shell: yes\n",
	})
	tests := []struct {
		site, path string
		status     int
		body       string
		want       map[string]string // "" means absent
	}{
		{pages, "/secret.html", 200, "secret", map[string]string{"X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'"}},
		{pages, "/secret", 200, "secret", map[string]string{"X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'"}},
		{pages, "/secret/", 200, "secret", map[string]string{"X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'"}},
		{pages, "/docs", 200, "docs", map[string]string{"X-Docs": "file"}},
		{pages, "/docs/", 200, "docs", map[string]string{"X-Docs": "file"}},
		{pages, "/", 200, "home", map[string]string{"X-Frame-Options": "", "X-Docs": "", "X-Error-Page": ""}},
		{pages, "/nope", 404, "not here", map[string]string{"X-Error-Page": "yes", "X-Frame-Options": ""}},
		{pages, "/gone", 404, "not here", map[string]string{"X-Error-Page": "yes", "X-Request-Rule": "yes"}},
		{spa, "/dashboard/settings", 200, "shell", map[string]string{"X-App-Shell": "yes"}},
		{spa, "/", 200, "shell", map[string]string{"X-App-Shell": "yes"}},
		{spa, "/app.js", 200, "run()", map[string]string{"X-App-Shell": ""}},
		{spa, "/missing.js", 404, "404 page not found\n", map[string]string{"X-App-Shell": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.body+tt.path, func(t *testing.T) {
			r := e.get(tt.site+".localhost", tt.path)
			if r.status != tt.status || r.body != tt.body {
				t.Fatalf("got %d %q, want %d %q", r.status, r.body, tt.status, tt.body)
			}
			for k, v := range tt.want {
				if got := strings.Join(r.header.Values(k), ", "); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestSiteCacheBudget: loaded sites are held within SiteBytes, and an alias
// does not keep an evicted site alive; an evicted site loads again when
// asked for.
func TestSiteCacheBudget(t *testing.T) {
	const budget = 400 << 10
	e := newEnv(t, Config{SiteBytes: budget, AliasTTL: time.Hour})
	var labels []string
	for i := range 20 {
		files := map[string]string{"index.html": fmt.Sprint("site ", i)}
		for j := range 200 {
			files[fmt.Sprintf("pages/p%03d.html", j)] = "x"
		}
		labels = append(labels, e.publish(files))
	}
	var sites []weak.Pointer[site]
	var cost int64
	for round := range 2 {
		for i, l := range labels {
			if r := e.get(l+".localhost", "/"); r.status != 200 || r.body != fmt.Sprint("site ", i) {
				t.Fatalf("round %d, site %d: %d %q", round, i, r.status, r.body)
			}
			if round == 0 {
				s, err := e.host.lookup(context.Background(), l+".localhost")
				if err != nil || s == nil {
					t.Fatal(s, err)
				}
				sites, cost = append(sites, weak.Make(s)), s.cost
			}
		}
	}
	runtime.GC()
	runtime.GC()
	alive := 0
	for _, w := range sites {
		if w.Value() != nil {
			alive++
		}
	}
	n, used := e.host.sites.stats()
	t.Logf("20 sites of ~%d bytes each, budget %d: %d cached (%d bytes), %d of the first round's alive after GC", cost, budget, n, used, alive)
	if used > budget || int64(alive)*cost > budget {
		t.Errorf("%d sites cached in %d bytes, %d alive; want at most %d bytes", n, used, alive, budget)
	}
}
