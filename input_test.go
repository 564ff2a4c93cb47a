package libra_test

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	libra "github.com/libra-deploy/libra-deploy"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"index.html", true},
		{"assets/app-1234.js", true},
		{"deep/a/b/c/d.txt", true},
		{".well-known/security.txt", true},
		{"", false},
		{"/etc/passwd", false},
		{"../escape", false},
		{"a/../../b", false},
		{"a/..", false},
		{"a//b", false},
		{"./a", false},
		{"a/", false},
		{"a\\b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"\xff\xfe", false},
		{strings.Repeat("a", 1024), true},
		{strings.Repeat("a", 1025), false},
	}
	for _, tt := range tests {
		err := libra.CheckPath(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}

func TestCheckDomain(t *testing.T) {
	tests := []struct {
		domain string
		ok     bool
	}{
		{"example.com", true},
		{"www.Example.COM", true},
		{"shop.example.co.uk.", true},
		{"xn--bcher-kva.example", true},
		{"", false},
		{"localhost", false},
		{"example", false},
		{"1.2.3.4", false},
		{"[::1]", false},
		{"::1", false},
		{"a.localhost", false},
		{"x.y.localhost", false},
		{"-bad.com", false},
		{"bad-.com", false},
		{"under_score.com", false},
		{"exa mple.com", false},
		{"example.123", false},
		{strings.Repeat("a", 64) + ".com", false},
	}
	for _, tt := range tests {
		err := libra.CheckDomain(tt.domain, "localhost")
		if (err == nil) != tt.ok {
			t.Errorf("CheckDomain(%q) = %v, want ok=%v", tt.domain, err, tt.ok)
		}
	}
}

func TestCheckID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"proj-1", true}, {"Org_2.x", true}, {"", false}, {"a/b", false}, {"a b", false},
		{strings.Repeat("x", 128), true}, {strings.Repeat("x", 129), false}, {"é", false},
	}
	for _, tt := range tests {
		if err := libra.CheckID(tt.id); (err == nil) != tt.ok {
			t.Errorf("CheckID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestNewDeploymentID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := libra.NewDeploymentID()
		if !libra.LooksLikeDeploymentID(id) || !libra.IsHostLabel(id) {
			t.Fatalf("id %q is not a lowercase host label of 26 characters", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

// FuzzCheckPath: whatever CheckPath accepts must stay inside the working
// directory once joined to it, and be a clean relative UTF-8 path.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"index.html", "a/b/c", "../x", "/abs", "a\\b", "a/./b", "..", "a/..b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if libra.CheckPath(p) != nil {
			return
		}
		if !utf8.ValidString(p) || strings.ContainsAny(p, "\x00\\") || strings.HasPrefix(p, "/") || len(p) > libra.MaxPathBytes {
			t.Fatalf("accepted %q", p)
		}
		joined := path.Join("/work", p)
		if !strings.HasPrefix(joined, "/work/") || path.Clean(p) != p {
			t.Fatalf("accepted %q, which resolves to %q", p, joined)
		}
	})
}

// FuzzCheckDomain: whatever CheckDomain accepts is a lower-case-able host
// name of valid labels that is neither an IP nor under the sites domain.
func FuzzCheckDomain(f *testing.F) {
	for _, s := range []string{"example.com", "a.localhost", "1.1.1.1", "[::1]", "EXAMPLE.com.", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d string) {
		if libra.CheckDomain(d, "localhost") != nil {
			return
		}
		n := libra.NormalizeDomain(d)
		if n == "localhost" || strings.HasSuffix(n, ".localhost") {
			t.Fatalf("accepted %q under the sites domain", d)
		}
		for _, l := range strings.Split(n, ".") {
			if !libra.IsHostLabel(l) {
				t.Fatalf("accepted %q with label %q", d, l)
			}
		}
	})
}
