package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/postgres"
	"github.com/libra-deploy/libra-deploy/queue"
)

// nodes opens n stores on one database, each with its own pool and River
// client: n nodes of a cluster, as far as the store can tell.
func nodes(t *testing.T, n int) []*postgres.DB {
	t.Helper()
	ctx := context.Background()
	url := pgtest.Database(t, migrateTemplate)
	out := make([]*postgres.DB, n)
	for i := range out {
		db, err := postgres.Open(ctx, postgres.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		q, err := queue.New[pgx.Tx](riverpgxv5.New(db.Pool), nil, queue.Config{})
		if err != nil {
			t.Fatal(err)
		}
		db.Enqueue = q.InsertManyTx
		out[i] = db
	}
	return out
}

func deployment(project, org string) *libra.Deployment {
	return &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: project, OrgID: org, UserID: "u",
		Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11",
		Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Digest: "sha256:00", Size: 1}}}
}

// Three nodes accepting 60 deployments at once against a limit of 20:
// exactly 20 accepted in all, each with its row and its River job.
func TestQuotaExactAcrossNodes(t *testing.T) {
	const limit, tries = 20, 60
	ctx := context.Background()
	ns := nodes(t, 3)
	if err := ns[0].CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := ns[1].SetQuota(ctx, "o", limit); err != nil {
		t.Fatal(err)
	}
	var accepted sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for i := range tries {
		accepted.Add(1)
		go func() {
			defer accepted.Done()
			err := ns[i%len(ns)].CreateDeployment(ctx, deployment("p", "o"))
			mu.Lock()
			defer mu.Unlock()
			counts[libra.ErrorCode(err)]++
			if err != nil && libra.ErrorCode(err) != libra.CodeQuotaExceeded {
				t.Error(err)
			}
		}()
	}
	accepted.Wait()
	okCount := tries - counts[libra.CodeQuotaExceeded]
	var rows, jobs, used int
	if err := ns[2].Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM deployments), (SELECT count(*) FROM river_job),
		(SELECT used FROM quota_usage WHERE org_id = 'o')`).Scan(&rows, &jobs, &used); err != nil {
		t.Fatal(err)
	}
	t.Logf("3 nodes, %d accepts at once, limit %d: %d accepted, %d rows, %d jobs, %d charged", tries, limit, okCount, rows, jobs, used)
	if okCount != limit || rows != limit || jobs != limit || used != limit {
		t.Fatalf("accepted %d, rows %d, jobs %d, charged %d; want %d of each", okCount, rows, jobs, used, limit)
	}
}

// The accept is one transaction: when the job cannot be enqueued, neither
// the deployment nor the quota charge remains.
func TestAcceptIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	db := nodes(t, 1)[0]
	if err := db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetQuota(ctx, "o", 5); err != nil {
		t.Fatal(err)
	}
	enqueue := db.Enqueue
	broken := errors.New("queue unavailable")
	db.Enqueue = func(context.Context, pgx.Tx, []string) ([]int64, error) { return nil, broken }
	d := deployment("p", "o")
	if err := db.CreateDeployment(ctx, d); !errors.Is(err, broken) {
		t.Fatalf("accept with a broken queue: %v", err)
	}
	if _, err := db.Deployment(ctx, d.ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("the deployment was written: %v", err)
	}
	if q, err := db.Quota(ctx, "o", "2026-11"); err != nil || q.Used != 0 {
		t.Fatalf("quota %+v, %v; nothing may be charged", q, err)
	}
	db.Enqueue = enqueue
	if err := db.CreateDeployment(ctx, d); err != nil {
		t.Fatalf("the same deployment once the queue works: %v", err)
	}
	if q, err := db.Quota(ctx, "o", "2026-11"); err != nil || q.Used != 1 {
		t.Fatalf("quota %+v, %v; want 1 used", q, err)
	}
}

// Two nodes publishing a project's deployments in reverse order, at once:
// the alias ends on the newest, and a rollback on one node is what the
// other node serves.
func TestNewestWinsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	ns := nodes(t, 2)
	if err := ns[0].CreateProject(ctx, libra.Project{ID: "site", OrgID: "o", Name: "s", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	var ds []*libra.Deployment
	for i := range 10 {
		d := deployment("site", "o")
		if err := ns[i%2].CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	var wg sync.WaitGroup
	for i := len(ds) - 1; i >= 0; i-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ns[i%2].Publish(ctx, ds[i].ID, "sha256:"+ds[i].ID, "http://x/"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, n := range ns {
		if id, _, err := n.SiteByProject(ctx, "site"); err != nil || id != ds[9].ID {
			t.Fatalf("node %d serves %s (%v), want the newest %s", i, id, err, ds[9].ID)
		}
	}
	done := libra.Now()
	ds[2].Status, ds[2].FinishedAt = libra.StatusCompleted, &done
	if err := ns[1].UpdateDeployment(ctx, ds[2], nil); err != nil {
		t.Fatal(err)
	}
	if err := ns[1].Rollback(ctx, "site", ds[2].ID); err != nil {
		t.Fatal(err)
	}
	if id, _, err := ns[0].SiteByProject(ctx, "site"); err != nil || id != ds[2].ID {
		t.Fatalf("node 0 after node 1's rollback serves %s (%v), want %s", id, err, ds[2].ID)
	}
}
