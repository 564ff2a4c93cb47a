package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// DELETE /projects/{id} on the real binary: refused (409) while a
// deployment runs; then its sites 404, its deployments are gone, its domain
// is free, a new project of the same id serves nothing of the old one, and
// gc removes its blobs once past the grace period while another project's
// stay.
func TestProjectDeleteE2E(t *testing.T) {
	s := startServer(t, append([]string{"LIBRA_TEST_HOOKS=build@doomed:sleep:2s", "GC_INTERVAL=0"}, noLimit...)...)
	tok := s.setup("acme", "doomed")
	s.admin("project", "create", "--org", "acme", "--id", "keep")
	other := s.setup("beta", "blog")
	pad := strings.Repeat(".", 9<<10) // over the inline limit: stored as blobs
	gone, kept := "<h1>doomed</h1>"+pad, "<h1>keep</h1>"+pad
	v1 := s.deployWait(tok, site("acme", "doomed", map[string]string{"index.html": gone}), "completed")
	k1 := s.deployWait(tok, site("acme", "keep", map[string]string{"index.html": kept}), "completed")
	wantCode(t, s.do("POST", "/projects/doomed/domains", map[string]any{"domain": "www.doomed.test"}, bearer(tok)...), 201, "")
	if r := s.page("doomed", "/"); r.status != 200 || string(r.body) != gone {
		t.Fatalf("alias before the delete: %d", r.status)
	}

	running := s.deploy(tok, site("acme", "doomed", map[string]string{"index.html": "v2" + pad})).str("deploymentId")
	s.waitFor(running, 10*time.Second, func(r response) bool { return r.str("currentStep") == "build" })
	wantCode(t, s.do("DELETE", "/projects/doomed", nil, bearer(tok)...), 409, "CONFLICT")
	s.waitFinal(running, 30*time.Second)
	wantCode(t, s.do("DELETE", "/projects/doomed", nil, bearer(other)...), 403, "FORBIDDEN")
	wantCode(t, s.do("DELETE", "/projects/doomed", nil), 401, "UNAUTHORIZED")
	wantCode(t, s.do("DELETE", "/projects/doomed", nil, bearer(tok)...), 200, "")

	checkDeletedProject(t, s, tok, v1, running)
	wantCode(t, s.do("DELETE", "/projects/doomed", nil, bearer(tok)...), 404, "PROJECT_NOT_FOUND")
	wantCode(t, s.do("POST", "/projects/keep/domains", map[string]any{"domain": "www.doomed.test"}, bearer(tok)...), 201, "")
	wantCode(t, s.do("POST", "/projects", map[string]any{"id": "doomed"}, bearer(other)...), 201, "")
	if r := s.page("doomed", "/"); r.status != 404 {
		t.Fatalf("a new project of the old id serves the old one: %d", r.status)
	}
	checkGCRemoves(t, s, gone, kept)
	if r := s.page(k1, "/"); r.status != 200 || string(r.body) != kept {
		t.Fatalf("the other project's deployment after gc: %d", r.status)
	}
}

func checkDeletedProject(t *testing.T, s *server, tok string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		wantCode(t, s.do("GET", "/deploy-status?id="+id, nil), 404, "DEPLOYMENT_NOT_FOUND")
		if r := s.page(id, "/"); r.status != 404 {
			t.Fatalf("deployment %s of the deleted project serves: %d", id, r.status)
		}
	}
	if r := s.page("doomed", "/"); r.status != 404 {
		t.Fatalf("the deleted project's alias serves: %d", r.status)
	}
	// (The domain was pending, so it never served; it must be detached.)
	if n := countRows(t, s, "SELECT count(*) FROM domains WHERE domain = 'www.doomed.test'"); n != 0 {
		t.Fatal("the deleted project's domain is still attached")
	}
	wantCode(t, s.do("GET", "/projects/doomed", nil, bearer(tok)...), 404, "PROJECT_NOT_FOUND")
	if n := countRows(t, s, "SELECT count(*) FROM deployments WHERE project_id = 'doomed'"); n != 0 {
		t.Fatalf("%d deployment rows left", n)
	}
}

// checkGCRemoves ages every blob past the grace period and runs gc: the
// deleted project's blob goes, the kept one stays.
func checkGCRemoves(t *testing.T, s *server, gone, kept string) {
	t.Helper()
	if !exists(blobFile(s, gone)) || !exists(blobFile(s, kept)) {
		t.Fatal("blobs not stored before gc; the test proves nothing")
	}
	old := time.Now().Add(-3 * time.Hour)
	err := filepath.WalkDir(filepath.Join(s.dataDir, "artifacts", "sha256"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gc:\n%s", s.admin("gc"))
	if exists(blobFile(s, gone)) {
		t.Error("gc kept the deleted project's blob")
	}
	if !exists(blobFile(s, kept)) {
		t.Error("gc removed another project's blob")
	}
}

// In cluster mode (PostgreSQL, two nodes, shared bucket), a project deleted
// through node 1 stops serving on node 2 within the stated flip bound,
// although node 2 had its alias cached.
func TestProjectDeleteAcrossNodesPostgres(t *testing.T) {
	dbURL := pgtest.Database(t, pgTemplate)
	gw := s3test.Start(t)
	nodes := []*server{startNode(t, dbURL, gw, 1), startNode(t, dbURL, gw, 2)}
	tok := pgAdmin(t, nodes[0], dbURL, "token", "create", "--org", "acme", "--user", "user-acme")
	pgAdmin(t, nodes[0], dbURL, "project", "create", "--org", "acme", "--id", "website")
	id := deployRelease(t, nodes[0], tok, "v1")
	untilServing(t, nodes, "v1", time.Now(), 10*time.Second)

	start := time.Now()
	wantCode(t, nodes[0].do("DELETE", "/projects/website", nil, bearer(tok)...), 200, "")
	took := untilServing(t, nodes, "", start, 3*flipBound)
	t.Logf("alias gone after the delete: node-1 %v, node-2 %v (bound %v)", took[0], took[1], flipBound)
	wantCode(t, nodes[1].do("GET", "/deploy-status?id="+id, nil), 404, "DEPLOYMENT_NOT_FOUND")
	wantCode(t, nodes[1].do("POST", "/projects", map[string]any{"id": "website"}, bearer(tok)...), 201, "")
	for i, n := range nodes {
		if v := n.serving(); v != "" {
			t.Fatalf("node-%d serves %s on the re-created project", i+1, v)
		}
	}
}
