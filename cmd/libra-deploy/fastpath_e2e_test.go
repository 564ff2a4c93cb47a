package main_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/http1/wiretest"
)

// TestSiteFastPathMatchesNetHTTP: plain GETs of sites take the fast loop
// (internal/http1), everything else net/http. Each request here is sent
// twice to the real binary: as it is, and with "Content-Length: 0", which
// means the same to HTTP but sends the connection to net/http. The two
// responses must match field for field (Date aside), over a site with
// every serving feature: pretty URLs, 404.html, _headers, _redirects,
// compressed variants, validators and ranges.
func TestSiteFastPathMatchesNetHTTP(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "fast")
	s.admin("project", "create", "--org", "acme", "--id", "spa")
	script := strings.Repeat("export const answer = 42; // padding so that compression pays\n", 60)
	id := s.deployWait(tok, site("acme", "fast", map[string]string{
		"index.html":               "<h1>home</h1>",
		"about.html":               "<h1>about</h1>",
		"docs/index.html":          "<h1>docs</h1>",
		"assets/app-3f9a1c2b.js":   script,
		"style.css":                "body { color: red }",
		"404.html":                 "<h1>not here</h1>",
		"_headers":                 "/assets/*\n  X-Asset: yes\n/about\n  X-Frame-Options: DENY\n",
		"_redirects":               "/old /about 301\n/blog/* /posts/:splat 302\n/rewrite /about.html 200\n",
		"images/pixel.svg":         "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
		"data/empty.json":          "",
		"weird name/file (1).html": "<p>spaces</p>",
		// Larger than the site host's memory cache takes (8 MiB): streamed
		// from disk, by sendfile on both paths.
		"media/big.bin": strings.Repeat("0123456789abcdef", 9<<16),
	}), "completed")
	s.deployWait(tok, site("acme", "spa", map[string]string{
		"index.html":     "<div id=app></div>",
		"wrangler.jsonc": `{"assets": {"not_found_handling": "single-page-application"}}`,
	}), "completed")

	addr := strings.TrimPrefix(s.url, "http://")
	hosts := []string{"fast.localhost", strings.TrimSuffix(s.siteHost(id), ":"+s.port), "spa.localhost", "nothing.localhost"}
	paths := []string{"/", "/index.html", "/about", "/about/", "/about.html", "/docs", "/docs/", "/docs/index.html",
		"/assets/app-3f9a1c2b.js", "/style.css", "/images/pixel.svg", "/data/empty.json", "/missing", "/missing.js",
		"/old", "/blog/a/b", "/rewrite", "/_headers", "/_redirects", "/?q=1", "/about?x=1&y", "/weird%20name/file%20(1).html",
		"/dashboard/settings"}
	variants := []struct {
		name    string
		method  string
		headers func(first http.Header) string
	}{
		{"plain", "GET", func(http.Header) string { return "" }},
		{"head", "HEAD", func(http.Header) string { return "" }},
		{"gzip and br", "GET", func(http.Header) string { return "Accept-Encoding: gzip, deflate, br\r\n" }},
		{"gzip", "GET", func(http.Header) string { return "Accept-Encoding: gzip\r\n" }},
		{"navigate", "GET", func(http.Header) string { return "Sec-Fetch-Mode: navigate\r\n" }},
		{"etag", "GET", func(h http.Header) string { return "If-None-Match: " + h.Get("Etag") + "\r\n" }},
		{"modified since", "GET", func(h http.Header) string { return "If-Modified-Since: " + h.Get("Last-Modified") + "\r\n" }},
		{"range", "GET", func(http.Header) string { return "Range: bytes=2-5\r\n" }},
	}
	compared, fastShaped := 0, 0
	for i, host := range hosts {
		paths := paths
		if i == 0 {
			paths = append(paths, "/media/big.bin")
		}
		for _, p := range paths {
			first := rawExchange(t, addr, "GET", host, p, "", false)
			for _, v := range variants {
				extra := v.headers(first.Header)
				got := rawExchange(t, addr, v.method, host, p, extra, false)
				want := rawExchange(t, addr, v.method, host, p, extra, true)
				if got.Text != want.Text {
					t.Errorf("%s %s%s (%s): fast loop and net/http differ\nfast loop:\n%s\nnet/http:\n%s",
						v.method, host, p, v.name, got.Text, want.Text)
				}
				compared++
				if !strings.Contains(p, "%") {
					fastShaped++
				}
			}
		}
	}
	if compared < 500 || fastShaped < 400 {
		t.Fatalf("compared %d responses (%d of fast-loop shape): too few to mean anything", compared, fastShaped)
	}
	t.Logf("%d requests answered alike by the fast loop and net/http (%d of them fast-loop shaped)", compared, fastShaped)
}

// rawExchange sends one request on a new connection and reads the response.
// viaNetHTTP adds "Content-Length: 0", which the fast loop leaves to net/http.
func rawExchange(t *testing.T, addr, method, host, path, extra string, viaNetHTTP bool) wiretest.Response {
	t.Helper()
	req := method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra
	if viaNetHTTP {
		req += "Content-Length: 0\r\n"
	}
	resps, err := wiretest.Exchange(addr, req+"\r\n", method)
	if err != nil || len(resps) != 1 || resps[0].Header == nil {
		t.Fatalf("%s %s%s: %v %v", method, host, path, err, resps)
	}
	return resps[0]
}
