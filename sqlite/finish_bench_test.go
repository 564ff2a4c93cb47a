package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/riverqueue/river/riverdriver/riversqlite"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/sqlite"
)

// benchStore is a store with River's tables and a project "p" whose
// deployments (n of them, queued) are ready to be finished.
func benchStore(b *testing.B, n int) (*sqlite.DB, *queue.Queue[*sql.Tx], []*libra.Deployment) {
	b.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	driver := riversqlite.New(db.Writer)
	if err := queue.Migrate(ctx, driver); err != nil {
		b.Fatal(err)
	}
	q, err := queue.New(driver, nil, queue.Config{})
	if err != nil {
		b.Fatal(err)
	}
	db.Enqueue = q.InsertManyTx
	if err := db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		b.Fatal(err)
	}
	ds := make([]*libra.Deployment, n)
	for i := range ds {
		ds[i] = &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "p", OrgID: "o", UserID: "u",
			Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11",
			Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Digest: "sha256:00", Size: 1}}}
		if err := db.CreateDeployment(ctx, ds[i]); err != nil {
			b.Fatal(err)
		}
	}
	return db, q, ds
}

// finishAll marks every deployment completed, one UpdateDeployment each:
// the write that announces deployment.succeeded.
func finishAll(b *testing.B, db *sqlite.DB, ds []*libra.Deployment) {
	ctx := context.Background()
	b.ResetTimer()
	for _, d := range ds {
		now := libra.Now()
		d.Status, d.FinishedAt, d.Progress = libra.StatusCompleted, &now, 100
		if err := db.UpdateDeployment(ctx, d, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ds))/b.Elapsed().Seconds(), "finishes/s")
}

// BenchmarkFinishDeployment: the final status write of a project without
// webhooks.
func BenchmarkFinishDeployment(b *testing.B) {
	db, _, ds := benchStore(b, b.N)
	finishAll(b, db, ds)
}
