package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

const leaseTTL = 5 * time.Second

func mustAcquire(t *testing.T, s libra.Store, id, node string, ttl time.Duration) libra.Lease {
	t.Helper()
	l, err := s.AcquireLease(ctx, id, node, ttl)
	if err != nil {
		t.Fatalf("acquire %s for %s: %v", id, node, err)
	}
	return l
}

// expire waits past a short lease on the database's clock.
func expire(ttl time.Duration) { time.Sleep(ttl + 50*time.Millisecond) }

func testLeaseTakenRenewedReleased(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	a := mustAcquire(t, s, d.ID, "node-a", leaseTTL)
	if a.Epoch != 1 || a.Node != "node-a" || a.DeploymentID != d.ID {
		t.Fatalf("first lease: %+v", a)
	}
	if _, err := s.AcquireLease(ctx, d.ID, "node-b", leaseTTL); !errors.Is(err, libra.ErrLeaseHeld) {
		t.Fatalf("acquire a held lease: %v, want ErrLeaseHeld", err)
	}
	if err := s.RenewLease(ctx, a, leaseTTL); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := s.ReleaseLease(ctx, a); err != nil {
		t.Fatalf("release: %v", err)
	}
	b := mustAcquire(t, s, d.ID, "node-b", leaseTTL)
	if b.Epoch != 2 {
		t.Fatalf("lease after a release: epoch %d, want 2", b.Epoch)
	}
	if err := s.RenewLease(ctx, a, leaseTTL); !errors.Is(err, libra.ErrLeaseLost) {
		t.Fatalf("renew a released lease: %v, want ErrLeaseLost", err)
	}
	finish(t, s, d, libra.StatusCompleted)
	if _, err := s.AcquireLease(ctx, d.ID, "node-c", leaseTTL); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("acquire a finished deployment: %v, want ErrNotFound", err)
	}
	if _, err := s.AcquireLease(ctx, "nope", "node-c", leaseTTL); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("acquire an unknown deployment: %v, want ErrNotFound", err)
	}
}

// A lease that expired is taken with a higher epoch, and every write the
// old holder makes afterwards fails with ErrLeaseLost and changes no row.
func testLeaseExpiredAndStolen(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	const short = 100 * time.Millisecond
	old := mustAcquire(t, s, d.ID, "node-a", short)
	oldCtx := libra.WithLease(ctx, old)
	d.Status, d.CurrentStep = libra.StatusInProgress, libra.StepBuild
	if err := s.UpdateDeployment(oldCtx, d, []libra.LogEntry{{Time: libra.Now(), Step: libra.StepBuild, Level: "info", Message: "a1"}}); err != nil {
		t.Fatalf("write under a live lease: %v", err)
	}
	expire(short)
	stolen := mustAcquire(t, s, d.ID, "node-b", leaseTTL)
	if stolen.Epoch <= old.Epoch {
		t.Fatalf("stolen lease epoch %d, old %d", stolen.Epoch, old.Epoch)
	}
	checkFenced(t, s, oldCtx, d)
	if err := s.RenewLease(ctx, old, leaseTTL); !errors.Is(err, libra.ErrLeaseLost) {
		t.Fatalf("renew a stolen lease: %v, want ErrLeaseLost", err)
	}
	// The new holder writes as usual.
	newCtx := libra.WithLease(ctx, stolen)
	if err := s.Publish(newCtx, d.ID, "sha256:new", "http://new/"); err != nil {
		t.Fatalf("publish under the new lease: %v", err)
	}
	if got, _ := s.Deployment(ctx, d.ID); got.Manifest != "sha256:new" {
		t.Fatalf("manifest %q after the new holder published", got.Manifest)
	}
}

// checkFenced makes every guarded write under oldCtx and checks that none
// changed the deployment, its logs, its project's alias or the quota.
func checkFenced(t *testing.T, s libra.Store, oldCtx context.Context, d *libra.Deployment) {
	t.Helper()
	logsBefore, _ := s.Logs(ctx, d.ID, 100)
	quotaBefore, _ := s.Quota(ctx, d.OrgID, month)
	late := *d
	late.Status, late.Error = libra.StatusFailed, "late write"
	writes := map[string]error{
		"UpdateDeployment": s.UpdateDeployment(oldCtx, &late, []libra.LogEntry{{Time: libra.Now(), Step: libra.StepBuild, Level: "info", Message: "late"}}),
		"AppendLogs":       s.AppendLogs(oldCtx, d.ID, []libra.LogEntry{{Time: libra.Now(), Step: libra.StepBuild, Level: "info", Message: "late"}}),
		"Publish":          s.Publish(oldCtx, d.ID, "sha256:stale", "http://stale/"),
		"RefundQuota":      s.RefundQuota(oldCtx, d.ID),
		"SetBuildKey":      s.SetBuildKey(oldCtx, d.ID, "stale-key"),
	}
	for name, err := range writes {
		if !errors.Is(err, libra.ErrLeaseLost) {
			t.Errorf("%s under a stolen lease: %v, want ErrLeaseLost", name, err)
		}
	}
	got, err := s.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status == libra.StatusFailed || got.Error != "" || got.Manifest == "sha256:stale" || got.QuotaRefunded {
		t.Errorf("a fenced write changed the deployment: %+v", got)
	}
	p, _ := s.Project(ctx, d.ProjectID)
	if p.Current == d.ID && got.Manifest == "sha256:stale" {
		t.Errorf("a fenced publish moved the alias")
	}
	logsAfter, _ := s.Logs(ctx, d.ID, 100)
	quotaAfter, _ := s.Quota(ctx, d.OrgID, month)
	if len(logsAfter) != len(logsBefore) || quotaAfter.Used != quotaBefore.Used {
		t.Errorf("fenced writes landed: logs %d -> %d, quota used %d -> %d",
			len(logsBefore), len(logsAfter), quotaBefore.Used, quotaAfter.Used)
	}
}

// The reaper takes an expired lease back once (two reapers, one reclaim),
// fences its holder and leaves the deployment queued for a new worker; past
// maxReclaims it dead-letters it and gives the quota back.
func testLeaseReaper(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	const short, maxReclaims = 100 * time.Millisecond, 2
	for round := 1; round <= maxReclaims+1; round++ {
		held := mustAcquire(t, s, d.ID, "node-a", short)
		if got, err := s.ReapLeases(ctx, time.Hour, maxReclaims, 10); err != nil || len(got) != 0 {
			t.Fatalf("round %d: reaped a live lease: %+v, %v", round, got, err)
		}
		expire(short)
		got, err := s.ReapLeases(ctx, time.Hour, maxReclaims, 10)
		if err != nil || len(got) != 1 || got[0].DeploymentID != d.ID || got[0].FromNode != "node-a" ||
			got[0].Epoch <= held.Epoch || got[0].Reclaims != round {
			t.Fatalf("round %d: reaped %+v, %v", round, got, err)
		}
		if again, err := s.ReapLeases(ctx, time.Hour, maxReclaims, 10); err != nil || len(again) != 0 {
			t.Fatalf("round %d: reaped twice: %+v, %v", round, again, err)
		}
		if err := s.AppendLogs(libra.WithLease(ctx, held), d.ID, []libra.LogEntry{{Time: libra.Now(), Level: "info", Message: "late"}}); !errors.Is(err, libra.ErrLeaseLost) {
			t.Fatalf("round %d: write by the reaped holder: %v", round, err)
		}
		checkReaped(t, s, d, got[0], round > maxReclaims)
	}
	// Each reclaim's log line is an event too, numbered like the
	// workflow's, so a follower sees why its deployment started over.
	evs := events(t, s, d.ID, 0, 100)
	if len(evs) != maxReclaims+1 {
		t.Fatalf("%d events after %d reclaims: %+v", len(evs), maxReclaims+1, evs)
	}
	for i, e := range evs {
		if e.ID != int64(i+1) || e.Type != libra.EventLog {
			t.Fatalf("reclaim event %d: %+v", i, e)
		}
	}
}

func checkReaped(t *testing.T, s libra.Store, d *libra.Deployment, r libra.Reclaimed, dead bool) {
	t.Helper()
	got, err := s.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := s.Quota(ctx, "o", month)
	if r.DeadLettered != dead {
		t.Fatalf("reclaim %d: dead-lettered %v, want %v", r.Reclaims, r.DeadLettered, dead)
	}
	if !dead && (got.Status != libra.StatusQueued || q.Used != 1) {
		t.Fatalf("re-dispatched: status %s, quota used %d (charged once, want 1)", got.Status, q.Used)
	}
	if dead && (got.Status != libra.StatusFailed || !got.QuotaRefunded || q.Used != 0 || got.FinishedAt == nil) {
		t.Fatalf("dead-lettered: status %s refunded %v finished %v, quota used %d", got.Status, got.QuotaRefunded, got.FinishedAt, q.Used)
	}
	if dead {
		if _, err := s.AcquireLease(ctx, d.ID, "node-b", leaseTTL); !errors.Is(err, libra.ErrNotFound) {
			t.Fatalf("acquire a dead-lettered deployment: %v", err)
		}
	}
}

// Heartbeats are stamped by the database: a node's age grows with the
// database's clock, whatever the node's.
func testHeartbeat(t *testing.T, s libra.Store) {
	for _, n := range []string{"node-b", "node-a"} {
		if err := s.Heartbeat(ctx, n); err != nil {
			t.Fatalf("heartbeat %s: %v", n, err)
		}
	}
	const pause = 300 * time.Millisecond
	time.Sleep(pause)
	if err := s.Heartbeat(ctx, "node-b"); err != nil {
		t.Fatal(err)
	}
	nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].ID != "node-a" || nodes[1].ID != "node-b" {
		t.Fatalf("nodes: %+v, %v", nodes, err)
	}
	if a, b := nodes[0].Age, nodes[1].Age; a < pause-20*time.Millisecond || a > 10*time.Second || b < 0 || b >= a {
		t.Fatalf("heartbeat ages: node-a %s, node-b %s (node-a paused %s)", a, b, pause)
	}
}
