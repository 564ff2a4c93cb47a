package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// Opening a database twice applies each migration once and records the
// newest in user_version.
func TestMigrateOnceAndInOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i := 0; i < 2; i++ {
		db, err := Open(ctx, Options{Path: path})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		var v int
		if err := db.Writer.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if v != ms[len(ms)-1].Version {
			t.Fatalf("open #%d: user_version %d, want %d", i+1, v, ms[len(ms)-1].Version)
		}
	}
}

// Deployments made before site labels get a fresh random one each, and their
// stored url moves to it: the old {id}.{domain} URL must stop working.
func TestMigrationBackfillsSiteLabels(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	old, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, schema+`; PRAGMA user_version = 1;
		INSERT INTO projects (id, org_id, name, host, created_at) VALUES ('p', 'o', 'p', 'p', 0);`); err != nil {
		t.Fatal(err)
	}
	ids := []string{libra.NewDeploymentID(), libra.NewDeploymentID()}
	for _, id := range ids {
		if _, err := old.ExecContext(ctx, `INSERT INTO deployments (id, project_id, org_id, user_id, status, steps, input, url, created_at)
			VALUES (?, 'p', 'o', 'u', 'completed', '{}', '[]', ?, 0)`, id, "http://"+id+".localhost:3008/"); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	db, err := Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	labels := map[string]bool{}
	for _, id := range ids {
		var label, url string
		if err := db.Writer.QueryRowContext(ctx, `SELECT site_label, url FROM deployments WHERE id = ?`, id).Scan(&label, &url); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: label %s, url %s", id, label, url)
		if !libra.IsSiteLabel(label) || strings.Contains(label, id) || labels[label] {
			t.Errorf("%s: label %q is not a fresh deployment label", id, label)
		}
		if url != "http://"+label+".localhost:3008/" {
			t.Errorf("%s: url %q does not use its label %q", id, url, label)
		}
		labels[label] = true
	}
}
