package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/internal/storetest"
	"github.com/libra-deploy/libra-deploy/postgres"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/webhook"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// migrateTemplate is how pgtest prepares the database every test copies:
// exactly what a node does when it opens the store.
func migrateTemplate(ctx context.Context, url string) error {
	db, err := postgres.Open(ctx, postgres.Options{URL: url})
	if err != nil {
		return err
	}
	return db.Close()
}

// open returns a store on a fresh database whose CreateDeployment enqueues
// real River jobs through riverpgxv5.
func open(t testing.TB) *postgres.DB {
	t.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Options{URL: pgtest.Database(t, migrateTemplate)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q, err := queue.New[pgx.Tx](riverpgxv5.New(db.Pool), nil, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	db.Enqueue = q.InsertManyTx
	db.EnqueueDeliveries = webhook.Enqueuer(q.Client())
	return db
}

// The store conformance suite, on a fresh PostgreSQL database per subtest.
func TestStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) libra.Store { return open(t) })
}
