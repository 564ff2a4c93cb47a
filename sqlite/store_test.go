package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/riverqueue/river/riverdriver/riversqlite"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storetest"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/sqlite"
	"github.com/libra-deploy/libra-deploy/webhook"
)

func open(t testing.TB) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "test.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	driver := riversqlite.New(db.Writer)
	if err := queue.Migrate(ctx, driver); err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(driver, nil, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	db.Enqueue = q.InsertManyTx
	db.EnqueueDeliveries = webhook.Enqueuer(q.Client())
	return db
}

// The store conformance suite, on a fresh SQLite file per subtest.
func TestStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) libra.Store { return open(t) })
}
