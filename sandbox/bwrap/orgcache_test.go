package bwrap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// legacyHashedKey is the cache name the provider gave an org id with a dot
// before issue 8: "org-" and 32 hex digits, which the bare digits (an id
// any org may pick) also mapped to.
func legacyHashedKey(org string) string {
	sum := sha256.Sum256([]byte(org))
	return "org-" + hex.EncodeToString(sum[:16])
}

func TestOrgCacheKeyIsInjective(t *testing.T) {
	old := legacyHashedKey("acme.com")
	tests := []struct{ a, b string }{
		{"acme.com", old},
		{"acme.com", strings.TrimPrefix(old, "org-")},
		{"acme", "org-acme"},
		{"acme corp", orgCacheKey("acme corp")},
	}
	for _, tt := range tests {
		ka, kb := orgCacheKey(tt.a), orgCacheKey(tt.b)
		t.Logf("%q -> %s, %q -> %s", tt.a, ka, tt.b, kb)
		if ka == kb {
			t.Errorf("orgs %q and %q share the cache %s", tt.a, tt.b, ka)
		}
	}
}

// TestOrgCacheNotSharedAcrossOrgs: a build of acme.com leaves a file in its
// org cache; builds of the orgs whose ids looked like acme.com's old cache
// name must not see it, while acme.com's next build still does.
func TestOrgCacheNotSharedAcrossOrgs(t *testing.T) {
	needSandbox(t)
	old := legacyHashedKey("acme.com")
	victim, _ := newSandbox(t, shared, "acme.com")
	mustOK(t, sh(t, victim, "echo victim-data > /cache/planted && ls /cache"), "write the victim's cache")
	if err := victim.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, attacker := range []string{old, strings.TrimPrefix(old, "org-")} {
		sb, _ := newSandbox(t, shared, attacker)
		r := sh(t, sb, "cat /cache/planted 2>/dev/null || echo absent")
		t.Logf("org %s sees: %s", attacker, r.out())
		if strings.Contains(r.out(), "victim-data") {
			t.Errorf("org %q reads acme.com's cache", attacker)
		}
		if err := sb.Destroy(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	again, _ := newSandbox(t, shared, "acme.com")
	r := sh(t, again, "cat /cache/planted")
	mustOK(t, r, "acme.com reads its own cache")
	if !strings.Contains(r.out(), "victim-data") {
		t.Errorf("acme.com lost its own cache: %q", r.out())
	}
}
