package workflow_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
	"github.com/libra-deploy/libra-deploy/sqlite"
	"github.com/libra-deploy/libra-deploy/workflow"
)

// countPublishes is the real store, counting the Publish calls that
// committed.
type countPublishes struct {
	libra.Store
	n *atomic.Int32
}

func (s countPublishes) Publish(ctx context.Context, id, manifest, url string) error {
	err := s.Store.Publish(ctx, id, manifest, url)
	if err == nil {
		s.n.Add(1)
	}
	return err
}

// Runs under a lease: one whose lease another node takes in the middle of
// the build stops with ErrLeaseLost and publishes nothing; one an earlier
// (dead) attempt already published completes without publishing again.
func TestRunUnderLease(t *testing.T) {
	tests := []struct {
		name string
		// before runs before the run starts; during, before its build step.
		before, during func(t *testing.T, db *sqlite.DB, id string)
		wantErr        error
		wantStatus     libra.Status
		wantPublishes  int32
	}{
		{"lease kept", nil, nil, nil, libra.StatusCompleted, 1},
		{"lease taken by another node during the build", nil, stealLease, libra.ErrLeaseLost, libra.StatusInProgress, 0},
		{"published by an earlier attempt", publishEarlier, nil, nil, libra.StatusCompleted, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, d := leaseFixture(t)
			if tt.before != nil {
				tt.before(t, db, d.ID)
			}
			var published atomic.Int32
			r := leaseRunner(t, countPublishes{Store: db, n: &published}, db)
			r.BeforeStep = func(ctx context.Context, _ *libra.Deployment, step libra.Step) error {
				if step == libra.StepBuild && tt.during != nil {
					tt.during(t, db, d.ID)
				}
				return nil
			}
			err := r.Run(context.Background(), d.ID, 1, 3)
			got, gerr := db.Deployment(context.Background(), d.ID)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) || got.Status != tt.wantStatus || published.Load() != tt.wantPublishes {
				t.Fatalf("run = %v, status %s, %d publishes; want %v, %s, %d", err, got.Status, published.Load(), tt.wantErr, tt.wantStatus, tt.wantPublishes)
			}
			if tt.during != nil && (got.Manifest != "" || got.CurrentStep != libra.StepBuild) {
				t.Fatalf("the fenced run wrote on: manifest %q, current step %s", got.Manifest, got.CurrentStep)
			}
		})
	}
}

func leaseFixture(t *testing.T) (*sqlite.DB, *libra.Deployment) {
	t.Helper()
	ctx := context.Background()
	db := openStore(t)
	if err := db.CreateProject(ctx, libra.Project{ID: "site", OrgID: "o", Name: "site", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "site", OrgID: "o", UserID: "u",
		Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11",
		Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Content: []byte("<p>hi</p>"), Size: 9}}}
	if err := db.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	return db, d
}

func leaseRunner(t *testing.T, store libra.Store, db *sqlite.DB) *workflow.Runner {
	t.Helper()
	artifacts, err := artifactfs.New(filepath.Join(t.TempDir(), "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &workflow.Runner{
		Store:     store,
		Artifacts: artifacts,
		WorkRoot:  t.TempDir(),
		SiteURL:   func(id string) string { return "http://" + id + ".localhost" },
		Leases:    &workflow.Leases{Store: db, Node: "node-a", TTL: 2 * time.Second, RenewEvery: 100 * time.Millisecond, Logger: logger},
		Logger:    logger,
	}
}

// stealLease does what a reaper on another node does to a lease it
// believes expired: move the epoch on and hand it to someone else.
func stealLease(t *testing.T, db *sqlite.DB, id string) {
	if _, err := db.Writer.Exec(`UPDATE deployments SET lease_epoch = lease_epoch + 1, lease_node = 'node-b' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a few renewals: the run learns it lost the lease
}

// publishEarlier is an earlier attempt that published and died before it
// could save the deployment completed.
func publishEarlier(t *testing.T, db *sqlite.DB, id string) {
	if err := db.Publish(context.Background(), id, "sha256:earlier", "http://earlier/"); err != nil {
		t.Fatal(err)
	}
}
