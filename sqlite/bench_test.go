package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/riverqueue/river/riverdriver/riversqlite"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storetest"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/sqlite"
)

// BenchmarkCreateDeployment measures the accept path's database work alone:
// quota charge, deployment row and River job, from 32 goroutines at once.
func BenchmarkCreateDeployment(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
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
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan struct{})
	go func() {
		for range b.N {
			work <- struct{}{}
		}
		close(work)
	}()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "p", OrgID: "o", UserID: "u",
					Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11",
					Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Digest: "sha256:00", Size: 1}}}
				if err := db.CreateDeployment(ctx, d); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deployments/s")
}

// BenchmarkUpdateDeployment and BenchmarkAppendLogs measure the writes a
// running deployment makes (storetest.BenchUpdateDeployment).
func BenchmarkUpdateDeployment(b *testing.B) { storetest.BenchUpdateDeployment(b, open(b)) }
func BenchmarkAppendLogs(b *testing.B)       { storetest.BenchAppendLogs(b, open(b)) }
