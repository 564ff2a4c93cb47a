package workflow_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/riverqueue/river/riverdriver/riversqlite"

	libra "github.com/libra-deploy/libra-deploy"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/sqlite"
	"github.com/libra-deploy/libra-deploy/workflow"
)

// endingCtx is a job context whose end the test triggers: Err reports
// err (a deadline or a shutdown) once end is called.
type endingCtx struct {
	context.Context
	err  error
	done chan struct{}
	once sync.Once
}

func newEndingCtx(err error) *endingCtx {
	return &endingCtx{Context: context.Background(), err: err, done: make(chan struct{})}
}

func (c *endingCtx) Done() <-chan struct{} { return c.done }

func (c *endingCtx) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

func (c *endingCtx) end() { c.once.Do(func() { close(c.done) }) }

// endAfterPublish is the real store, whose Publish ends the job's context
// right after it committed: the moment the deployment became production.
type endAfterPublish struct {
	libra.Store
	ctx *endingCtx
}

func (s endAfterPublish) Publish(ctx context.Context, id, manifest, url string) error {
	err := s.Store.Publish(ctx, id, manifest, url)
	if err == nil {
		s.ctx.end()
	}
	return err
}

func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "libra.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	driver := riversqlite.New(db.Writer)
	if err := queue.Migrate(ctx, driver); err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(driver, nil, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	db.Enqueue = q.InsertManyTx
	return db
}

// TestPublishedDeploymentEndsCompleted: once Publish committed, the
// deployment is production; a deadline or a shutdown that comes right after
// must not mark it failed nor send it back to the queue.
func TestPublishedDeploymentEndsCompleted(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"deadline right after publish", context.DeadlineExceeded},
		{"shutdown right after publish", context.Canceled},
	} {
		t.Run(c.name, func(t *testing.T) {
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
			artifacts, err := artifactfs.New(filepath.Join(t.TempDir(), "artifacts"))
			if err != nil {
				t.Fatal(err)
			}
			job := newEndingCtx(c.err)
			r := &workflow.Runner{
				Store:     endAfterPublish{Store: db, ctx: job},
				Artifacts: artifacts,
				WorkRoot:  t.TempDir(),
				SiteURL:   func(id string) string { return "http://" + id + ".localhost" },
				Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			runErr := r.Run(job, d.ID, 1, 3)
			got, err := db.Deployment(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			rel, err := db.ProjectRelease(ctx, "site")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("job context ended after publish (%v): run returned %v, status %s, error %q", c.err, runErr, got.Status, got.Error)
			if job.Err() == nil {
				t.Fatal("the store hook never ended the job's context: Publish was not reached")
			}
			if runErr != nil || got.Status != libra.StatusCompleted || got.Error != "" {
				t.Errorf("run = %v, status %s, error %q; want nil, completed, no error", runErr, got.Status, got.Error)
			}
			if rel.Production == nil || rel.Production.ID != d.ID {
				t.Errorf("production = %+v, want %s", rel.Production, d.ID)
			}
		})
	}
}
