package sqlite

import (
	"context"
	"path/filepath"
	"testing"
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
		if v != ms[len(ms)-1].version {
			t.Fatalf("open #%d: user_version %d, want %d", i+1, v, ms[len(ms)-1].version)
		}
	}
}
