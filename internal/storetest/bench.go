package storetest

import (
	"fmt"
	"sync"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// The write paths a running deployment keeps busy, for both stores'
// benchmarks: state saves (UpdateDeployment, with the lines gathered since
// the last) and log flushes (AppendLogs). Each runs with followers
// deployments in progress at once, one goroutine each.
const benchDeployments = 8

// BenchUpdateDeployment saves step transitions with two log lines each.
func BenchUpdateDeployment(b *testing.B, s libra.Store) {
	benchWrites(b, s, "saves/s", func(d *libra.Deployment, i int) error {
		now := libra.Now()
		step := libra.Steps[i%len(libra.Steps)]
		d.Status, d.CurrentStep = libra.StatusInProgress, step
		d.Steps[step] = libra.StepState{Status: libra.StepInProgress, Timestamp: &now}
		return s.UpdateDeployment(ctx, d, benchLines(i, 2))
	})
}

// BenchAppendLogs flushes batches of ten lines.
func BenchAppendLogs(b *testing.B, s libra.Store) {
	benchWrites(b, s, "flushes/s", func(d *libra.Deployment, i int) error {
		return s.AppendLogs(ctx, d.ID, benchLines(i, 10))
	})
}

func benchLines(i, n int) []libra.LogEntry {
	out := make([]libra.LogEntry, n)
	for j := range out {
		out[j] = libra.LogEntry{Time: libra.Now(), Step: libra.StepBuild, Level: "info",
			Message: fmt.Sprintf("line %d.%d: added 1234 packages, and audited 1235 packages in 12s", i, j)}
	}
	return out
}

func benchWrites(b *testing.B, s libra.Store, unit string, write func(d *libra.Deployment, i int) error) {
	if err := s.CreateProject(ctx, libra.Project{ID: "bench", OrgID: "o", Name: "bench", CreatedAt: libra.Now()}); err != nil {
		b.Fatal(err)
	}
	ds := make([]*libra.Deployment, benchDeployments)
	for i := range ds {
		ds[i] = newDeployment("bench", "o")
		if err := s.CreateDeployment(ctx, ds[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	work := make(chan int)
	go func() {
		for i := range b.N {
			work <- i
		}
		close(work)
	}()
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := write(d, i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}
