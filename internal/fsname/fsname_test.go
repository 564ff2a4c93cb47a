package fsname

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// oldSandboxKey is the name sandbox/bwrap gave an org's npm cache before
// fsname: "org-" and the id, or "org-" and a hash for ids with dots.
func oldSandboxKey(org string) string {
	sum := sha256.Sum256([]byte(org))
	return "org-" + hex.EncodeToString(sum[:16])
}

func TestIDIsInjective(t *testing.T) {
	// acme.com is the pair of issue 8; "acme corp" is an id that needs a
	// hash under either rule.
	victim, hashed := "acme.com", "acme corp"
	oldName := oldSandboxKey(victim)
	tests := []struct {
		name       string
		a, b       string
		wantPlainA bool // a is used verbatim
	}{
		{"the old sandbox name as an org id", victim, oldName, true},
		{"the old name without its prefix", victim, strings.TrimPrefix(oldName, "org-"), true},
		{"the hashed name as an org id", hashed, ID(hashed), false},
		{"the hashed name without its marker", hashed, strings.TrimPrefix(ID(hashed), hashedPrefix), false},
		{"case differs", "Acme", "acme", true},
		{"dot-dot is not plain", "..", ".", false},
		{"slash", "a/b", "a_b", false},
		{"empty and hash of empty", "", strings.TrimPrefix(ID(""), hashedPrefix), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			na, nb := ID(tt.a), ID(tt.b)
			t.Logf("%q -> %q, %q -> %q", tt.a, na, tt.b, nb)
			if na == nb {
				t.Fatalf("ID(%q) == ID(%q) == %q", tt.a, tt.b, na)
			}
			if (na == tt.a) != tt.wantPlainA {
				t.Errorf("ID(%q) = %q, want plain=%v", tt.a, na, tt.wantPlainA)
			}
			for _, n := range []string{na, nb} {
				if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
					t.Errorf("%q is not a safe file name", n)
				}
			}
		})
	}
}
