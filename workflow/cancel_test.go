package workflow_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
	"github.com/libra-deploy/libra-deploy/sqlite"
	"github.com/libra-deploy/libra-deploy/workflow"
)

func cancelRunner(t *testing.T, db *sqlite.DB, hook func(ctx context.Context, d *libra.Deployment, step libra.Step) error) *workflow.Runner {
	t.Helper()
	artifacts, err := artifactfs.New(filepath.Join(t.TempDir(), "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &workflow.Runner{
		Store:      db,
		Artifacts:  artifacts,
		WorkRoot:   t.TempDir(),
		SiteURL:    func(id string) string { return "http://" + id + ".localhost" },
		BeforeStep: hook,
		Leases:     &workflow.Leases{Store: db, Node: "node-a", TTL: 5 * time.Second, RenewEvery: time.Second, Logger: log},
		// Never told of requests (Listen is not called): only the poll
		// can stop a run.
		Cancels: &workflow.Cancels{Store: db, Logger: log},
		Logger:  log,
	}
}

func queuedDeployment(t *testing.T, db *sqlite.DB) *libra.Deployment {
	t.Helper()
	ctx := context.Background()
	if err := db.CreateProject(ctx, libra.Project{ID: "site", OrgID: "o", Name: "site", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "site", OrgID: "o", UserID: "u",
		Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11",
		Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Content: []byte("<p>hi</p>"), Size: 9}}}
	if err := db.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// The poll alone (no announcement) stops a run blocked in a step within
// DefaultCancelPoll and a margin; the run ends cancelled, not retried.
func TestCancelSeenByPoll(t *testing.T) {
	db := openStore(t)
	d := queuedDeployment(t, db)
	blocked := make(chan struct{})
	r := cancelRunner(t, db, func(ctx context.Context, _ *libra.Deployment, step libra.Step) error {
		if step != libra.StepSync {
			return nil
		}
		close(blocked)
		<-ctx.Done()
		return ctx.Err()
	})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), d.ID, 1, 3) }()
	<-blocked
	sent := time.Now()
	if status, err := db.RequestCancel(context.Background(), d.ID); err != nil || status != libra.StatusInProgress {
		t.Fatalf("request cancel: %q, %v; want in_progress", status, err)
	}
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not stop within 10 s of the request")
	}
	took := time.Since(sent)
	t.Logf("run stopped by the poll %s after the request (poll every %s)", took.Round(time.Millisecond), workflow.DefaultCancelPoll)
	if took > 4*workflow.DefaultCancelPoll {
		t.Errorf("the poll took %s, want under %s", took, 4*workflow.DefaultCancelPoll)
	}
	got, err := db.Deployment(context.Background(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if runErr != nil || got.Status != libra.StatusCancelled || got.Steps[libra.StepSync].Error != "cancelled" ||
		got.Steps[libra.StepCleanup].Status != libra.StepCompleted || !got.QuotaRefunded {
		t.Fatalf("run = %v; deployment %+v; want cancelled, sync failed \"cancelled\", cleanup completed, quota back", runErr, got)
	}
}

// A request recorded while a step ends on its own (before the run saw it)
// still wins: a step that fails ends cancelled rather than failed or
// retried, and a deploy step finds Publish refused, so nothing publishes.
func TestCancelRecordedDuringStep(t *testing.T) {
	for _, c := range []struct {
		name    string
		step    libra.Step
		stepErr error
	}{
		{"step fails for good", libra.StepSync, libra.Permanent(errors.New("bad input"))},
		{"step fails, would be retried", libra.StepSync, errors.New("platform fault")},
		{"publish after the request", libra.StepDeploy, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openStore(t)
			d := queuedDeployment(t, db)
			r := cancelRunner(t, db, func(ctx context.Context, _ *libra.Deployment, step libra.Step) error {
				if step != c.step {
					return nil
				}
				if _, err := db.RequestCancel(context.Background(), d.ID); err != nil {
					t.Errorf("request cancel: %v", err)
				}
				return c.stepErr
			})
			r.Cancels = nil // the run learns of it only where it ends
			runErr := r.Run(context.Background(), d.ID, 1, 3)
			got, err := db.Deployment(context.Background(), d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if runErr != nil || got.Status != libra.StatusCancelled || got.Manifest != "" || got.URL != "" ||
				got.Steps[c.step].Error != "cancelled" {
				t.Fatalf("run = %v; deployment %+v; want cancelled, unpublished", runErr, got)
			}
			rel, err := db.ProjectRelease(context.Background(), "site")
			if err != nil || rel.Production != nil {
				t.Fatalf("production = %+v, %v; want none", rel, err)
			}
		})
	}
}
