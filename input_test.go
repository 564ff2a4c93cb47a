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

func TestCheckProjectID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"website", true},
		{"my-site", true},
		{"My_Site.v2", true},
		{"a--b", false},
		{"xn--bcher-kva", false},
		{"Shop--Preview", false},
		{libra.NewDeploymentID(), false},
		{strings.ToUpper(libra.NewDeploymentID()), false},
		{"abcdefghijklmnopqrstuvwxy1", true}, // 26 characters, but '1' is not base32
		{"", false},
	}
	for _, tt := range tests {
		if err := libra.CheckProjectID(tt.id); (err == nil) != tt.ok {
			t.Errorf("CheckProjectID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestNewSiteLabel(t *testing.T) {
	long := strings.Repeat("a", 47) + "-b" + strings.Repeat("c", 14)
	tests := []struct {
		projectHost, wantPrefix string
	}{
		{"website", "website--"},
		{"", "d--"},
		{strings.Repeat("x", 63), strings.Repeat("x", 48) + "--"},
		{long, strings.Repeat("a", 47) + "--"}, // the cut ends in '-', which is dropped
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		for range 100 {
			l := libra.NewSiteLabel(tt.projectHost)
			random := strings.TrimPrefix(l, tt.wantPrefix)
			if !strings.HasPrefix(l, tt.wantPrefix) || len(random) != 13 || strings.Trim(random, "abcdefghijklmnopqrstuvwxyz234567") != "" {
				t.Fatalf("NewSiteLabel(%q) = %q, want %q and 13 base32 characters", tt.projectHost, l, tt.wantPrefix)
			}
			if !libra.IsSiteLabel(l) || len(l) > 63 {
				t.Fatalf("NewSiteLabel(%q) = %q is not a deployment host label", tt.projectHost, l)
			}
			if _, ok := libra.ProjectHost(l); ok {
				t.Fatalf("site label %q is also a project host", l)
			}
			if seen[l] {
				t.Fatalf("NewSiteLabel repeated %q", l)
			}
			seen[l] = true
		}
	}
}

func TestCheckHost(t *testing.T) {
	name253 := strings.Repeat("a.", 126) + "b" // 253 bytes
	tests := []struct {
		host string
		ok   bool
	}{
		{"localhost:3008", true},
		{name253, true},
		{name253 + ".", true},
		{name253 + ":65535", true},
		{"[::1]:3008", true},
		{"[::1]", true},
		{name253 + "c", false},
		{name253 + "c:80", false},
		{strings.Repeat("x", 300), false},
		{strings.Repeat("x", 1<<20), false},
	}
	for _, tt := range tests {
		if err := libra.CheckHost(tt.host); (err == nil) != tt.ok {
			t.Errorf("CheckHost(%.40q... %d bytes) = %v, want ok=%v", tt.host, len(tt.host), err, tt.ok)
		}
	}
}
