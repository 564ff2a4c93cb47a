package postgres_test

import (
	"context"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/workflow"
)

// Start-up recovery ends a deployment whose job ended without finishing
// it: cancelled when its cancel had been requested, failed otherwise.
func TestFailLostHonoursCancelRequests(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	want := map[string]libra.Status{}
	for _, cancel := range []bool{true, false} {
		d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "p", OrgID: "o", UserID: "u",
			Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11"}
		if err := db.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AcquireLease(ctx, d.ID, "node-a", time.Minute); err != nil {
			t.Fatal(err)
		}
		want[d.ID] = libra.StatusFailed
		if cancel {
			if _, err := db.RequestCancel(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			want[d.ID] = libra.StatusCancelled
		}
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now()`); err != nil {
		t.Fatal(err)
	}
	if n, err := db.FailLostDeployments(ctx); err != nil || n != 2 {
		t.Fatalf("FailLostDeployments = %d, %v; want 2", n, err)
	}
	for id, status := range want {
		d, err := db.Deployment(ctx, id)
		if err != nil || d.Status != status || d.FinishedAt == nil {
			t.Fatalf("deployment %s: %+v, %v; want %s", id, d, err, status)
		}
	}
}

// BenchmarkCancelRequested is the safety net's cost: each running
// deployment reads this once per workflow.DefaultCancelPoll.
func BenchmarkCancelRequested(b *testing.B) {
	ctx := context.Background()
	db := open(b)
	if err := db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		b.Fatal(err)
	}
	d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "p", OrgID: "o", UserID: "u",
		Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11"}
	if err := db.CreateDeployment(ctx, d); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		if requested, err := db.CancelRequested(ctx, d.ID); err != nil || requested {
			b.Fatalf("CancelRequested = %v, %v", requested, err)
		}
	}
	// What polling costs 100 running deployments: 100 × (1 s / poll
	// interval) reads a second, in milliseconds of reading per second.
	perPoll := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(100*float64(time.Second/workflow.DefaultCancelPoll)*perPoll.Seconds()*1000, "ms/s@100runs")
}
