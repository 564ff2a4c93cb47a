package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

func quotaUsed(t *testing.T, s libra.Store, org string) int {
	t.Helper()
	q, err := s.Quota(ctx, org, month)
	if err != nil {
		t.Fatalf("quota of %s: %v", org, err)
	}
	return q.Used
}

// A queued deployment that no node holds is cancelled in the request's
// transaction: final, never started, its quota back, no lease to be had.
func testCancelQueued(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	if used := quotaUsed(t, s, "o"); used != 1 {
		t.Fatalf("quota used %d after one deployment, want 1", used)
	}
	status, err := s.RequestCancel(ctx, d.ID)
	if err != nil || status != libra.StatusCancelled {
		t.Fatalf("cancel a queued deployment: %q, %v; want cancelled", status, err)
	}
	got, err := s.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != libra.StatusCancelled || got.FinishedAt == nil || got.StartedAt != nil || !got.QuotaRefunded {
		t.Fatalf("cancelled deployment: %+v", got)
	}
	for _, step := range libra.Steps {
		if got.Steps[step].Status != libra.StepPending {
			t.Fatalf("step %s of a deployment cancelled while queued: %+v", step, got.Steps[step])
		}
	}
	if used := quotaUsed(t, s, "o"); used != 0 {
		t.Fatalf("quota used %d after the cancel, want 0", used)
	}
	if _, err := s.AcquireLease(ctx, d.ID, "node-a", leaseTTL); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("a worker took a cancelled deployment's lease: %v, want ErrNotFound", err)
	}
	if requested, err := s.CancelRequested(ctx, d.ID); err != nil || !requested {
		t.Fatalf("CancelRequested = %v, %v; want true", requested, err)
	}
	_, err = s.RequestCancel(ctx, d.ID)
	wantCode(t, "cancel twice", err, libra.CodeDeploymentFinished)
	if used := quotaUsed(t, s, "o"); used != 0 {
		t.Fatalf("quota used %d after a second cancel, want 0", used)
	}
}

// Final, published and unknown deployments cannot be cancelled, and the
// refusal changes nothing.
func testCancelRefused(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	failed, published, done := mustDeploy(t, s, "p", "o"), mustDeploy(t, s, "p", "o"), mustDeploy(t, s, "p", "o")
	finish(t, s, failed, libra.StatusFailed)
	complete(t, s, done)
	l := mustAcquire(t, s, published.ID, "node-a", leaseTTL)
	if err := s.Publish(libra.WithLease(ctx, l), published.ID, "sha256:m", "http://x/"); err != nil {
		t.Fatalf("publish: %v", err)
	}
	for name, d := range map[string]*libra.Deployment{"failed": failed, "published": published, "completed": done} {
		_, err := s.RequestCancel(ctx, d.ID)
		wantCode(t, "cancel a "+name+" deployment", err, libra.CodeDeploymentFinished)
		if requested, err := s.CancelRequested(ctx, d.ID); err != nil || requested {
			t.Fatalf("%s: CancelRequested = %v, %v after a refused cancel", name, requested, err)
		}
	}
	if got, err := s.Deployment(ctx, published.ID); err != nil || got.Status != libra.StatusQueued || got.Manifest == "" {
		t.Fatalf("published deployment after a refused cancel: %+v, %v", got, err)
	}
	if _, err := s.RequestCancel(ctx, libra.NewDeploymentID()); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("cancel an unknown deployment: %v, want ErrNotFound", err)
	}
}

// A deployment a node holds is left to that node: the request is recorded
// and announced, Publish refuses it from then on, and nothing else changes.
func testCancelRunning(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	l := mustAcquire(t, s, d.ID, "node-a", leaseTTL)
	heard := watchCancels(t, s)
	// Requests are idempotent and each is announced: repeat until the
	// watcher (whose LISTEN may not be up yet) hears one.
	deadline := time.Now().Add(10 * time.Second)
	for waiting := true; waiting; {
		status, err := s.RequestCancel(ctx, d.ID)
		if err != nil || status != libra.StatusQueued {
			t.Fatalf("cancel a held deployment: %q, %v; want its status, queued", status, err)
		}
		select {
		case id := <-heard:
			if id != d.ID {
				t.Fatalf("announced %q, want %q", id, d.ID)
			}
			waiting = false
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no announcement heard within 10 s")
			}
		}
	}
	if requested, err := s.CancelRequested(ctx, d.ID); err != nil || !requested {
		t.Fatalf("CancelRequested = %v, %v; want true", requested, err)
	}
	err := s.Publish(libra.WithLease(ctx, l), d.ID, "sha256:m", "http://x/")
	if !errors.Is(err, libra.ErrCancelled) {
		t.Fatalf("publish after a cancel request: %v, want ErrCancelled", err)
	}
	got, err := s.Deployment(ctx, d.ID)
	if err != nil || got.Status != libra.StatusQueued || got.Manifest != "" || got.QuotaRefunded {
		t.Fatalf("held deployment after a cancel request: %+v, %v", got, err)
	}
	if err := s.RenewLease(ctx, l, leaseTTL); err != nil {
		t.Fatalf("the holder lost its lease to a cancel request: %v", err)
	}
}

func watchCancels(t *testing.T, s libra.Store) <-chan string {
	wctx, cancel := context.WithCancel(ctx)
	heard := make(chan string, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.WatchCancels(wctx, func(id string) {
			select {
			case heard <- id:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return heard
}

// A running deployment whose node stopped renewing is cancelled at once,
// its old holder fenced; its build had begun, so its quota stays spent.
func testCancelExpiredLease(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	ttl := 300 * time.Millisecond
	l := mustAcquire(t, s, d.ID, "node-a", ttl)
	now := libra.Now()
	d.Status, d.StartedAt, d.CurrentStep = libra.StatusInProgress, &now, libra.StepBuild
	d.Steps[libra.StepBuild] = libra.StepState{Status: libra.StepInProgress, Timestamp: &now}
	if err := s.UpdateDeployment(libra.WithLease(ctx, l), d, nil); err != nil {
		t.Fatal(err)
	}
	expire(ttl)
	status, err := s.RequestCancel(ctx, d.ID)
	if err != nil || status != libra.StatusCancelled {
		t.Fatalf("cancel a deployment whose lease expired: %q, %v; want cancelled", status, err)
	}
	got, err := s.Deployment(ctx, d.ID)
	if err != nil || got.Status != libra.StatusCancelled || got.QuotaRefunded {
		t.Fatalf("deployment: %+v, %v; want cancelled, quota kept", got, err)
	}
	if st := got.Steps[libra.StepBuild]; st.Status != libra.StepFailed || st.Error != "cancelled" {
		t.Fatalf("build step of a cancelled deployment: %+v, want failed: cancelled", st)
	}
	if used := quotaUsed(t, s, "o"); used != 1 {
		t.Fatalf("quota used %d, want 1: the build had begun", used)
	}
	d.Status = libra.StatusFailed
	if err := s.UpdateDeployment(libra.WithLease(ctx, l), d, nil); !errors.Is(err, libra.ErrLeaseLost) {
		t.Fatalf("old holder's write after the cancel: %v, want ErrLeaseLost", err)
	}
}

// Cancel and Publish racing on one deployment: exactly one wins, every
// time. Either the publish committed and the cancel is refused, or the
// cancel was recorded and the publish refused.
func testCancelPublishRace(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	published, cancelled := 0, 0
	for range 20 {
		d := mustDeploy(t, s, "p", "o")
		lctx := libra.WithLease(ctx, mustAcquire(t, s, d.ID, "node-a", leaseTTL))
		var pubErr, cancelErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); pubErr = s.Publish(lctx, d.ID, "sha256:m-"+d.ID, "http://x/") }()
		go func() { defer wg.Done(); _, cancelErr = s.RequestCancel(ctx, d.ID) }()
		wg.Wait()
		switch {
		case pubErr == nil && libra.ErrorCode(cancelErr) == libra.CodeDeploymentFinished:
			published++
		case cancelErr == nil && errors.Is(pubErr, libra.ErrCancelled):
			cancelled++
		default:
			t.Fatalf("publish: %v; cancel: %v; want exactly one to win", pubErr, cancelErr)
		}
	}
	t.Logf("20 races: publish won %d, cancel won %d", published, cancelled)
}

// A deployment whose node died after its cancel was requested is cancelled
// by the reaper rather than dispatched again or dead-lettered; its build
// never began, so its quota comes back.
func testCancelReaped(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	ttl := 300 * time.Millisecond
	mustAcquire(t, s, d.ID, "dead-node", ttl)
	if status, err := s.RequestCancel(ctx, d.ID); err != nil || status != libra.StatusQueued {
		t.Fatalf("cancel a held deployment: %q, %v", status, err)
	}
	expire(ttl)
	got, err := s.ReapLeases(ctx, time.Minute, 0, 10)
	if err != nil || len(got) != 1 || !got[0].Cancelled || got[0].DeadLettered || got[0].DeploymentID != d.ID {
		t.Fatalf("reaped %+v, %v; want %s cancelled (even with no reclaims allowed)", got, err, d.ID)
	}
	after, err := s.Deployment(ctx, d.ID)
	if err != nil || after.Status != libra.StatusCancelled || !after.QuotaRefunded || after.Error != "cancelled" {
		t.Fatalf("reaped deployment: %+v, %v; want cancelled, quota back", after, err)
	}
	if used := quotaUsed(t, s, "o"); used != 0 {
		t.Fatalf("quota used %d, want 0", used)
	}
	if _, err := s.AcquireLease(ctx, d.ID, "node-b", leaseTTL); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("a worker took the reaped, cancelled deployment: %v, want ErrNotFound", err)
	}
}

// Retention prunes cancelled deployments like completed and failed ones,
// and lists show them as cancelled; a queued one is never pruned.
func testCancelledRetention(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	old, queued := mustDeploy(t, s, "p", "o"), mustDeploy(t, s, "p", "o")
	if _, err := s.RequestCancel(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	page, err := s.ListDeployments(ctx, "p", "", 10)
	if err != nil || len(page.Deployments) != 2 || page.Deployments[1].Status != libra.StatusCancelled {
		t.Fatalf("list: %+v, %v; want the older one cancelled", page, err)
	}
	newest := mustDeploy(t, s, "p", "o")
	finish(t, s, newest, libra.StatusFailed)
	got, err := s.PruneDeployments(ctx, 1, false)
	if err != nil || len(got) != 1 || got[0].ID != old.ID || got[0].Status != libra.StatusCancelled {
		t.Fatalf("pruned %+v, %v; want only the cancelled %s", got, err, old.ID)
	}
	if _, err := s.Deployment(ctx, queued.ID); err != nil {
		t.Fatalf("queued deployment pruned: %v", err)
	}
}
