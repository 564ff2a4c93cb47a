package main_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libra-deploy/libra-deploy/sqlite"
)

// Issue 8, items 5 and 11, end to end: a deployment's immutable URL has a
// host label of its own, not its id, and no project can take that URL over
// once the deployment is deleted.
func TestSiteLabelTakeover(t *testing.T) {
	s := startServer(t, noLimit...)
	acme := s.setup("acme", "shop")
	evil := s.setup("evil", "evil-site")
	old := s.deployWait(acme, site("acme", "shop", map[string]string{"index.html": "acme v1"}), "completed")
	s.deployWait(acme, site("acme", "shop", map[string]string{"index.html": "acme v2"}), "completed")

	// The status stays public, and its url does not give the id away.
	st := s.do("GET", "/deploy-status?id="+old, nil)
	wantCode(t, st, 200, "")
	host := s.siteHost(old)
	label := strings.TrimSuffix(host, ".localhost:"+s.port)
	t.Logf("deployment %s is served at %s", old, st.str("url"))
	if !strings.HasPrefix(label, "shop--") || strings.Contains(st.str("url"), old) {
		t.Errorf("site url %q: want shop--{random} without the deployment id", st.str("url"))
	}
	if r := s.do("GET", "/", nil, "Host", host); r.status != 200 || string(r.body) != "acme v1" {
		t.Fatalf("acme's preview: %d %q", r.status, r.body)
	}

	// Project ids that could stand for a deployment's host are refused.
	for _, id := range []string{label, strings.ToUpper(label), old, "xn--evil", "evil--site"} {
		r := s.do("POST", "/projects", map[string]any{"id": id}, bearer(evil)...)
		if r.status != 400 || r.str("error") != "VALIDATION_ERROR" || r.json["success"] != false {
			t.Errorf("project %q: %d %s, want 400 VALIDATION_ERROR", id, r.status, r.body)
		}
	}

	// A project named like the label from before ids with "--" were
	// refused (before the fix, evil could simply create it above): it
	// deploys, but its name is in the deployment namespace.
	addLegacyProject(t, s, "evil", label)
	s.deployWait(evil, site("evil", label, map[string]string{"index.html": "evil page"}), "completed")

	wantCode(t, s.do("DELETE", "/deployments/"+old, nil, bearer(acme)...), 200, "")
	for _, h := range []string{host, old + ".localhost:" + s.port} {
		r := s.do("GET", "/", nil, "Host", h)
		if r.status != 404 || strings.Contains(string(r.body), "evil") {
			t.Errorf("GET %s after acme deleted its deployment: %d %q, want 404", h, r.status, r.body)
		}
	}
}

// addLegacyProject writes a project row as a binary from before issue 8
// would have, with its id as its alias host, into the server's database.
func addLegacyProject(t *testing.T, s *server, org, id string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(s.dataDir, "libra.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Writer.ExecContext(ctx, `INSERT INTO projects (id, org_id, name, host, created_at) VALUES (?, ?, ?, ?, 0) ON CONFLICT DO NOTHING`,
		id, org, id, strings.ToLower(id)); err != nil {
		t.Fatalf("insert legacy project %s: %v", id, err)
	}
}
