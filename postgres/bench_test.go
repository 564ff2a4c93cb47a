package postgres_test

import (
	"context"
	"sync"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storetest"
)

// BenchmarkCreateDeployment measures the accept path's database work alone
// on PostgreSQL (quota charge, deployment row, River job in one
// transaction) from 32 goroutines at once, for comparison with SQLite's
// group commit (sqlite.BenchmarkCreateDeployment). The server runs with
// fsync off here, so this is the CPU cost, not the disk's.
func BenchmarkCreateDeployment(b *testing.B) {
	ctx := context.Background()
	db := open(b)
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
				if err := db.CreateDeployment(ctx, deployment("p", "o")); err != nil {
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
