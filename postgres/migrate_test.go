package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/postgres"
)

// Nodes that boot together on a fresh database all open it at once: every
// open succeeds, and each migration (ours and River's) was applied exactly
// once. Without the advisory lock they race on CREATE TABLE and on the
// migration tables' keys, and some opens fail.
func TestParallelOpensMigrateOnce(t *testing.T) {
	const nodes = 8
	ctx := context.Background()
	url := pgtest.Empty(t)
	dbs := make([]*postgres.DB, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = postgres.Open(ctx, postgres.Options{URL: url})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d of %d: %v", i+1, nodes, err)
		}
		defer dbs[i].Close()
	}
	ours, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	river, err := rivermigrate.New[pgx.Tx](riverpgxv5.New(dbs[0].Pool), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, query string
		want        int
	}{
		{"libra_migrations rows", `SELECT count(*) FROM libra_migrations`, len(ours)},
		{"distinct libra versions", `SELECT count(DISTINCT version) FROM libra_migrations`, len(ours)},
		{"river_migration rows", `SELECT count(*) FROM river_migration`, len(river.AllVersions())},
		{"distinct river versions", `SELECT count(DISTINCT version) FROM river_migration`, len(river.AllVersions())},
		{"advisory locks left held", `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`, 0},
	}
	for _, tt := range tests {
		var got int
		if err := dbs[0].Pool.QueryRow(ctx, tt.query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	t.Logf("%d parallel opens: %d migrations of ours and %d of River's, each applied once", nodes, len(ours), len(river.AllVersions()))
}
