package main_test

import (
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

// The CLI's incremental deploy against a server on PostgreSQL: which org
// holds which upload lives in the database there.
func TestCLIDeployOnPostgres(t *testing.T) {
	dbURL := pgtest.Database(t, pgTemplate)
	s := startServer(t, "POSTGRES_URL="+dbURL, "RATE_LIMIT_RPS=1000000", "RATE_LIMIT_BURST=1000000")
	tok := pgAdmin(t, s, dbURL, "token", "create", "--org", "acme", "--user", "user-acme")
	pgAdmin(t, s, dbURL, "project", "create", "--org", "acme", "--id", "web")
	other := pgAdmin(t, s, dbURL, "token", "create", "--org", "globex", "--user", "user-globex")
	dir := t.TempDir()
	writeFolder(t, dir, map[string]string{"index.html": "<h1>pg 1</h1>", "a.css": "a{}", "b.js": "b()"})

	tests := []struct {
		name             string
		change           map[string]string
		uploaded, served int
	}{
		{"first deploy uploads everything", nil, 3, 3},
		{"one file changed uploads one", map[string]string{"index.html": "<h1>pg 2</h1>"}, 1, 3},
		{"nothing changed uploads nothing", nil, 0, 3},
	}
	for _, tt := range tests {
		writeFolder(t, dir, tt.change)
		out := cliDeployJSON(t, s.url, tok, dir, "web", 0)
		if out.Status != "completed" || out.FilesUploaded != tt.uploaded || out.FilesPresent != tt.served-tt.uploaded {
			t.Fatalf("%s: %+v", tt.name, out)
		}
	}
	if got := s.missing(other, sum([]byte("a{}")), sum([]byte("b()"))); len(got) != 2 {
		t.Fatalf("another org sees acme's uploads as present: missing %v", got)
	}
}
