package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// The tests below need one thing only the store's own package can do (raw
// SQL in its dialect, a driver-typed hook), so they are not in Run: each
// store's tests call them with that one thing as a function.

// Recoverer is a store with start-up recovery, which cmd calls on the
// concrete store rather than through libra.Store.
type Recoverer interface {
	libra.Store
	FailLostDeployments(ctx context.Context) (int64, error)
}

// FailLostHonoursCancelRequests checks that start-up recovery ends a
// deployment whose job ended without finishing it: cancelled when its cancel
// had been requested, failed otherwise. endJobs marks every queue job
// finalized, in the store's own SQL.
func FailLostHonoursCancelRequests(t *testing.T, s Recoverer, endJobs func(context.Context) error) {
	mustProject(t, s, "p", "o")
	want := map[string]libra.Status{}
	for _, cancel := range []bool{true, false} {
		d := mustDeploy(t, s, "p", "o")
		mustAcquire(t, s, d.ID, "node-a", time.Minute)
		want[d.ID] = libra.StatusFailed
		if cancel {
			if _, err := s.RequestCancel(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			want[d.ID] = libra.StatusCancelled
		}
	}
	if err := endJobs(ctx); err != nil {
		t.Fatalf("end the jobs: %v", err)
	}
	if n, err := s.FailLostDeployments(ctx); err != nil || n != 2 {
		t.Fatalf("FailLostDeployments = %d, %v; want 2", n, err)
	}
	for id, status := range want {
		d, err := s.Deployment(ctx, id)
		if err != nil || d.Status != status || d.FinishedAt == nil {
			t.Fatalf("deployment %s: %+v, %v; want %s", id, d, err, status)
		}
	}
}

// OutboxFailureRollsBackTheChange checks that the outbox is part of the
// change's transaction: when the delivery's job cannot be written, neither
// can the deployment nor its final status. breakOutbox makes the store's
// delivery enqueuing fail with the error it is given.
func OutboxFailureRollsBackTheChange(t *testing.T, s libra.Store, breakOutbox func(error)) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	if err := s.CreateWebhook(ctx, libra.Webhook{ID: "wh_1", ProjectID: "p", URL: "https://example.com/",
		Secret: "whsec_eA==", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("queue unavailable")
	breakOutbox(broken)

	d.Status = libra.StatusFailed
	if err := s.UpdateDeployment(ctx, d, nil); !errors.Is(err, broken) {
		t.Fatalf("final update: %v, want the enqueue error", err)
	}
	if got, _ := s.Deployment(ctx, d.ID); got.Status != libra.StatusQueued {
		t.Fatalf("status after a failed outbox: %s", got.Status)
	}
	again := *d
	again.ID, again.SiteLabel, again.Status = libra.NewDeploymentID(), "", libra.StatusQueued
	if err := s.CreateDeployment(ctx, &again); !errors.Is(err, broken) {
		t.Fatalf("create: %v, want the enqueue error", err)
	}
	if _, err := s.Deployment(ctx, again.ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("deployment written without its delivery: %v", err)
	}
	if ds, err := s.WebhookDeliveries(ctx, "wh_1", 10); err != nil || len(ds) != 0 {
		t.Fatalf("deliveries: %d, %v", len(ds), err)
	}
}

// BenchCancelRequested is the cancel safety net's cost: each running
// deployment reads CancelRequested once per poll.
func BenchCancelRequested(b *testing.B, s libra.Store, poll time.Duration) {
	if err := s.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		b.Fatal(err)
	}
	d := newDeployment("p", "o")
	if err := s.CreateDeployment(ctx, d); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		if requested, err := s.CancelRequested(ctx, d.ID); err != nil || requested {
			b.Fatalf("CancelRequested = %v, %v", requested, err)
		}
	}
	// What polling costs 100 running deployments: 100 × (1 s / poll
	// interval) reads a second, in milliseconds of reading per second.
	perPoll := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(100*float64(time.Second/poll)*perPoll.Seconds()*1000, "ms/s@100runs")
}
