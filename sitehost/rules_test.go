package sitehost

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestPatterns(t *testing.T) {
	tests := []struct {
		pattern, path string
		match         bool
		vals          []string
	}{
		{"/a", "/a", true, nil},
		{"/a/", "/a", true, nil},
		{"/a", "/a/b", false, nil},
		{"/*", "/", true, []string{""}},
		{"/*", "/x/y", true, []string{"x/y"}},
		{"/blog/*", "/blog", true, []string{""}},
		{"/blog/*", "/blog/a/b", true, []string{"a/b"}},
		{"/blog/*", "/blogger", false, nil},
		{"/a/*.js", "/a/x/y.js", true, []string{"x/y"}},
		{"/u/:id", "/u/42", true, []string{"42"}},
		{"/u/:id", "/u/42/x", false, nil},
		{"/u/:id/:tab", "/u/1/posts", true, []string{"1", "posts"}},
		{"/p/:slug.html", "/p/hello.html", true, []string{"hello"}},
		{"/a.b", "/a.b", true, nil},
		{"/a.b", "/axb", false, nil},
		{"/(x)", "/(x)", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.path, func(t *testing.T) {
			p, err := compilePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			ok, vals := p.match(trimSlash(tt.path))
			if ok != tt.match {
				t.Fatalf("match = %v, want %v", ok, tt.match)
			}
			if ok && !reflect.DeepEqual(vals, tt.vals) {
				t.Errorf("vals = %q, want %q", vals, tt.vals)
			}
		})
	}
	for _, bad := range []string{"", "a", "/*/*"} {
		if _, err := compilePattern(bad); err == nil {
			t.Errorf("compilePattern(%q) succeeded", bad)
		}
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		s      string
		names  []string
		vals   []string
		escape bool
		want   string
	}{
		{"/posts/:splat", []string{"splat"}, []string{"a/b c"}, false, "/posts/a/b c"},
		{"/posts/:splat", []string{"splat"}, []string{"a/b c"}, true, "/posts/a/b%20c"},
		{"https://x.test/:id?ref=:id", []string{"id"}, []string{"7"}, false, "https://x.test/7?ref=7"},
		{"max-age: :unknown", []string{"id"}, []string{"7"}, false, "max-age: :unknown"},
		{"/:idx", []string{"id"}, []string{"7"}, false, "/:idx"},
	}
	for _, tt := range tests {
		if got := expand(tt.s, tt.names, tt.vals, tt.escape); got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestParseRedirects(t *testing.T) {
	rs, warnings := parseRedirects([]byte(`
# comment
/a /b
/c /d 301!
/e
/f /g 418
/h relative 301
/i https://x.test 200
/j id=:id /k 301
/l /m 302 Country=us
/*/* /n
/* /index.html 200
`))
	if len(warnings) != 7 {
		t.Errorf("warnings = %d, want 7: %q", len(warnings), warnings)
	}
	for _, w := range warnings {
		if !strings.HasPrefix(w, "_redirects line ") {
			t.Errorf("warning without a line number: %q", w)
		}
	}
	if r, _ := rs.match("/a", false); r == nil || r.status != 302 || r.to != "/b" {
		t.Errorf("default status: %+v, want 302 to /b", r)
	}
	if r, _ := rs.match("/c", true); r == nil || !r.force || r.status != 301 {
		t.Errorf("forced rule: %+v", r)
	}
	if r, _ := rs.match("/x", true); r != nil {
		t.Errorf("shadowed rewrite applied: %+v", r)
	}
	if r, _ := rs.match("/x", false); r == nil || r.status != 200 {
		t.Errorf("rewrite: %+v", r)
	}
	if rs, _ := parseRedirects([]byte("# only comments\n")); rs != nil {
		t.Error("empty file gave rules")
	}
}

func TestRedirectOrder(t *testing.T) {
	// File order decides between static and dynamic rules.
	rs, _ := parseRedirects([]byte("/x/* /first 301\n/x/y /second 301\n/z /third 301\n/* /fourth 301\n"))
	for path, want := range map[string]string{"/x/y": "/first", "/z": "/third", "/other": "/fourth"} {
		if r, _ := rs.match(path, false); r == nil || r.to != want {
			t.Errorf("%s: %+v, want %s", path, r, want)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	rules, warnings := parseHeaders([]byte(`
  X-Orphan: 1
/a
  X-One: 1
  Bad Name: x
  Transfer-Encoding: chunked
  ! X-Gone
  no colon
https://host.test/*
  X-Host: 1
/b
  x-lower: v
`))
	if len(rules) != 2 {
		t.Fatalf("rules = %d, want 2", len(rules))
	}
	if len(warnings) != 5 {
		t.Errorf("warnings = %d, want 5: %q", len(warnings), warnings)
	}
	if got := rules[0].set; len(got) != 1 || got[0] != (headerField{"X-One", "1"}) {
		t.Errorf("rule /a sets %v", got)
	}
	if got := rules[0].detach; len(got) != 1 || got[0] != "X-Gone" {
		t.Errorf("rule /a detaches %v", got)
	}
	if got := rules[1].set; len(got) != 1 || got[0].name != "X-Lower" {
		t.Errorf("rule /b sets %v, want the canonical name X-Lower", got)
	}
}

func TestStripJSONC(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a": 1, // c
}`, `{"a":1}`},
		{`{"a": "// not a comment", /* x */ "b": [1, 2,],}`, `{"a":"// not a comment","b":[1,2]}`},
		{`{"a": "quote \" // still string"}`, `{"a":"quote \" // still string"}`},
	}
	for _, tt := range tests {
		var got, want any
		if err := json.Unmarshal(stripJSONC([]byte(tt.in)), &got); err != nil {
			t.Errorf("%q: %v (stripped %q)", tt.in, err, stripJSONC([]byte(tt.in)))
			continue
		}
		_ = json.Unmarshal([]byte(tt.want), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %v, want %v", tt.in, got, want)
		}
	}
}

func TestFingerprinted(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"assets/index-BxYz12ab.js", true},
		{"assets/index-DiwrgTdA.css", true},
		{"assets/vendor-B-x_12ab.js", true},
		{"static/js/main.3f2a1b9c.js", true},
		{"static/js/main.3f2a1b9c4d5e6f7a.chunk.js", false}, // hash not last
		{"_astro/index.Cx1_9aBq.css", true},
		{"_next/static/chunks/webpack.js", true},
		{"assets/logo.png", false},
		{"assets/hero-background.jpg", false},
		{"report-20240101.pdf", false},
		{"fonts/Roboto-BoldItalic.woff2", false},
		{"fonts/Inter-SemiBold.woff2", false},
		{"my-component-v2.js", false},
		{"jquery-3.7.1.min.js", false},
		{"bundle.js", false},
		{"noext", false},
	}
	for _, tt := range tests {
		if got := fingerprinted(tt.path); got != tt.want {
			t.Errorf("fingerprinted(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestAcceptedEncodings(t *testing.T) {
	tests := []struct {
		values   []string
		br, gzip bool
	}{
		{nil, false, false},
		{[]string{"gzip"}, false, true},
		{[]string{"GZIP"}, false, true},
		{[]string{"deflate, gzip;q=0.5"}, false, true},
		{[]string{"br", "gzip"}, true, true},
		{[]string{"gzip, deflate, br, zstd"}, true, true},
		{[]string{"BR;q=0.1"}, true, false},
		{[]string{"br;q=0, gzip"}, false, true},
		{[]string{"br; q=0.0"}, false, false},
		{[]string{"gzip;q=0"}, false, false},
		{[]string{"gzip; q=0.000"}, false, false},
		{[]string{"gzip;q=0.001"}, false, true},
		{[]string{"*"}, true, true},
		{[]string{"*;q=0"}, false, false},
		{[]string{"*, gzip;q=0"}, true, false},
		{[]string{"*, br;q=0"}, false, true},
		{[]string{"identity"}, false, false},
		{[]string{"x-gzip"}, false, true},
		{[]string{"brotli"}, false, false},
	}
	for _, tt := range tests {
		if br, gz := acceptedEncodings(tt.values); br != tt.br || gz != tt.gzip {
			t.Errorf("acceptedEncodings(%q) = br %v, gzip %v; want %v, %v", tt.values, br, gz, tt.br, tt.gzip)
		}
	}
}

func TestCleanPaths(t *testing.T) {
	tests := []struct {
		in    string
		clean bool
		out   string
	}{
		{"/", true, "/"},
		{"/a/b.js", true, "/a/b.js"},
		{"/a/", true, "/a/"},
		{"/.well-known/x", true, "/.well-known/x"},
		{"/a..b", true, "/a..b"},
		{"//a", false, "/a"},
		{"/a/./b", false, "/a/b"},
		{"/a/../../b/", false, "/b/"},
		{"/a/..", false, "/"},
		{"/a/.", false, "/a/"},
	}
	for _, tt := range tests {
		if got := isClean(tt.in); got != tt.clean {
			t.Errorf("isClean(%q) = %v, want %v", tt.in, got, tt.clean)
		}
		if got := cleanPath(tt.in); got != tt.out {
			t.Errorf("cleanPath(%q) = %q, want %q", tt.in, got, tt.out)
		}
	}
}
