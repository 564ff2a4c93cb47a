package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

// tokenItems returns GET /tokens' tokens by user id.
func tokenItems(t *testing.T, s *server, tok string) map[string]map[string]any {
	t.Helper()
	r := s.do("GET", "/tokens", nil, bearer(tok)...)
	wantCode(t, r, 200, "")
	items, _ := r.json["tokens"].([]any)
	out := map[string]map[string]any{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		out[m["userId"].(string)] = m
	}
	return out
}

// noSecretIn fails when text holds any of the tokens or their hashes.
func noSecretIn(t *testing.T, where, text string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		sum := sha256.Sum256([]byte(tok))
		if strings.Contains(text, tok) || strings.Contains(strings.ToLower(text), hex.EncodeToString(sum[:])) {
			t.Fatalf("%s shows a token or its hash: %s", where, text)
		}
	}
}

// The token lifecycle on the real binary and SQLite: list without secrets,
// last use recorded, another org's revoke refused as 404, a token revoked
// through the API or the CLI refused at once, expired tokens refused.
func TestTokenLifecycleE2E(t *testing.T) {
	s := startServer(t)
	alice := s.setup("acme", "web")
	bob := s.admin("token", "create", "--org", "acme", "--user", "bob", "--expires", "720h")
	other := s.setup("beta", "blog")

	items := tokenItems(t, s, alice)
	noSecretIn(t, "GET /tokens", string(s.do("GET", "/tokens", nil, bearer(alice)...).body), alice, bob, other)
	if len(items) != 2 || items["user-acme"] == nil || items["bob"] == nil {
		t.Fatalf("acme's tokens: %v", items)
	}
	if items["user-acme"]["lastUsedAt"] == nil || items["bob"]["lastUsedAt"] != nil {
		t.Fatalf("lastUsedAt: the caller's is set, the unused one null: %v", items)
	}
	if _, has := items["user-acme"]["expiresAt"]; has {
		t.Fatalf("a token without expiry shows expiresAt: %v", items["user-acme"])
	}
	exp, err := time.Parse(time.RFC3339, items["bob"]["expiresAt"].(string))
	if err != nil || exp.Sub(time.Now()) < 719*time.Hour || exp.Sub(time.Now()) > 721*time.Hour {
		t.Fatalf("--expires 720h: expiresAt %v (%v)", items["bob"]["expiresAt"], err)
	}
	bobID := items["bob"]["id"].(string)
	listed := s.admin("token", "list", "--org", "acme")
	noSecretIn(t, "token list", listed, alice, bob, other)
	if !strings.Contains(listed, bobID) || !strings.Contains(listed, items["user-acme"]["id"].(string)) {
		t.Fatalf("token list --org acme lacks an id:\n%s", listed)
	}

	wantCode(t, s.do("DELETE", "/tokens/"+bobID, nil, bearer(other)...), 404, "NOT_FOUND")
	wantCode(t, s.do("GET", "/tokens", nil, bearer(bob)...), 200, "")
	wantCode(t, s.do("DELETE", "/tokens/"+bobID, nil), 401, "UNAUTHORIZED")
	wantCode(t, s.do("DELETE", "/tokens/"+bobID, nil, bearer(alice)...), 200, "")
	wantCode(t, s.do("GET", "/usage", nil, bearer(bob)...), 401, "UNAUTHORIZED")
	wantCode(t, s.do("DELETE", "/tokens/"+bobID, nil, bearer(alice)...), 404, "NOT_FOUND")
	if again := tokenItems(t, s, alice); len(again) != 1 || again["bob"] != nil {
		t.Fatalf("after the revoke: %v", again)
	}

	otherID := tokenItems(t, s, other)["user-beta"]["id"].(string)
	if out := s.admin("token", "revoke", otherID); !strings.Contains(out, otherID) {
		t.Fatalf("token revoke: %q", out)
	}
	wantCode(t, s.do("GET", "/tokens", nil, bearer(other)...), 401, "UNAUTHORIZED")

	short := s.admin("token", "create", "--org", "acme", "--user", "brief", "--expires", "1ms")
	time.Sleep(20 * time.Millisecond)
	r := s.do("GET", "/tokens", nil, bearer(short)...)
	wantCode(t, r, 401, "UNAUTHORIZED")
	if !strings.Contains(r.str("message"), "expired") {
		t.Fatalf("expired token: %s", r.body)
	}
	wantCode(t, s.do("GET", "/tokens", nil, bearer(alice)...), 200, "")
}

// Bad CLI input is refused and writes nothing.
func TestTokenCLIRefusesBadInput(t *testing.T) {
	s := startServer(t)
	alice := s.setup("acme", "web")
	tests := []struct {
		name string
		args []string
	}{
		{"negative expiry", []string{"token", "create", "--org", "acme", "--user", "u", "--expires", "-1h"}},
		{"expiry not a duration", []string{"token", "create", "--org", "acme", "--user", "u", "--expires", "soon"}},
		{"revoke without id", []string{"token", "revoke"}},
		{"revoke unknown id", []string{"token", "revoke", "tok_000000000000000000000000"}},
		{"list without org", []string{"token", "list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(binary, append(tt.args, "--data-dir", s.dataDir)...).CombinedOutput()
			if err == nil {
				t.Fatalf("libra-deploy %v succeeded: %s", tt.args, out)
			}
		})
	}
	if items := tokenItems(t, s, alice); len(items) != 1 {
		t.Fatalf("refused commands changed the tokens: %v", items)
	}
}

// On PostgreSQL with two nodes: a token revoked through node 1 is refused by
// node 2 on its next request (no node caches tokens).
func TestTokenRevokeAcrossNodesPostgres(t *testing.T) {
	dbURL := pgtest.Database(t, pgTemplate)
	n1 := startServer(t, "POSTGRES_URL="+dbURL)
	n2 := startServer(t, "POSTGRES_URL="+dbURL)
	admin := pgAdmin(t, n1, dbURL, "token", "create", "--org", "acme", "--user", "admin")
	doomed := pgAdmin(t, n1, dbURL, "token", "create", "--org", "acme", "--user", "doomed")
	wantCode(t, n2.do("GET", "/tokens", nil, bearer(doomed)...), 200, "")
	id := tokenItems(t, n1, admin)["doomed"]["id"].(string)
	wantCode(t, n1.do("DELETE", "/tokens/"+id, nil, bearer(admin)...), 200, "")
	wantCode(t, n2.do("GET", "/tokens", nil, bearer(doomed)...), 401, "UNAUTHORIZED")
	wantCode(t, n2.do("GET", "/tokens", nil, bearer(admin)...), 200, "")
}

// lastUsedAt costs at most one write a minute per token: 200 requests in a
// row leave the value the first one wrote.
func TestTokenLastUseWrittenOncePerMinute(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	query := "SELECT coalesce(last_used_at, 0) FROM tokens WHERE user_id = 'user-acme'"
	if n := countRows(t, s, query); n != 0 {
		t.Fatalf("a new token has lastUsedAt %d", n)
	}
	wantCode(t, s.do("GET", "/usage", nil, bearer(tok)...), 200, "")
	first := countRows(t, s, query)
	if age := time.Since(time.UnixMicro(int64(first))); first == 0 || age < 0 || age > time.Minute {
		t.Fatalf("lastUsedAt after the first request: %d (age %v)", first, age)
	}
	const requests = 200
	for range requests {
		wantCode(t, s.do("GET", "/usage", nil, bearer(tok)...), 200, "")
	}
	if again := countRows(t, s, query); again != first {
		t.Fatalf("lastUsedAt rewritten within a minute: %d, then %d", first, again)
	}
	t.Logf("%d requests within a minute of the first: 1 lastUsedAt write", requests+1)
}
