package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver/riversqlite"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/sqlite"
)

func open(t testing.TB) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "test.db")})
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

func newDeployment(project, org string) *libra.Deployment {
	return &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: project, OrgID: org, UserID: "u",
		Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11",
		Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Digest: "sha256:00", Size: 1}}}
}

// An older deployment that finishes after a newer one must not take the
// production alias back.
func TestPublishNewestWins(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := db.CreateProject(ctx, libra.Project{ID: "Site", OrgID: "o", Name: "s", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	older, newer := newDeployment("Site", "o"), newDeployment("Site", "o")
	for _, d := range []*libra.Deployment{older, newer} {
		if err := db.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		publish  *libra.Deployment
		manifest string
		want     string
	}{
		{newer, "sha256:newer", newer.ID},
		{older, "sha256:older", newer.ID}, // finished later, but older
	}
	for _, s := range steps {
		if err := db.Publish(ctx, s.publish.ID, s.manifest, "http://x/"); err != nil {
			t.Fatal(err)
		}
		id, manifest, err := db.SiteByProject(ctx, "site") // the alias host is the lower-cased id
		if err != nil {
			t.Fatal(err)
		}
		if id != s.want || manifest != "sha256:newer" {
			t.Fatalf("alias serves %s (%s), want %s", id, manifest, s.want)
		}
	}
	// The older deployment still has its own immutable site.
	if id, m, err := db.SiteByLabel(ctx, older.SiteLabel); err != nil || id != older.ID || m != "sha256:older" {
		t.Fatalf("older deployment's site: %s %q %v", id, m, err)
	}
	if _, _, err := db.SiteByLabel(ctx, older.ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("a deployment id is not a site label, got %v", err)
	}
}

func TestQuotaChargeAndRefund(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetQuota(ctx, "o", 2); err != nil {
		t.Fatal(err)
	}
	var ds []*libra.Deployment
	for i := range 3 {
		d := newDeployment("p", "o")
		err := db.CreateDeployment(ctx, d)
		if i < 2 && err != nil {
			t.Fatalf("deployment %d: %v", i, err)
		}
		if i == 2 && libra.ErrorCode(err) != libra.CodeQuotaExceeded {
			t.Fatalf("third deployment: %v, want QUOTA_EXCEEDED", err)
		}
		ds = append(ds, d)
	}
	if _, err := db.Deployment(ctx, ds[2].ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("refused deployment was written: %v", err)
	}
	// Refunding twice gives back one.
	for range 2 {
		if err := db.RefundQuota(ctx, ds[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	q, err := db.Quota(ctx, "o", "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	if q.Used != 1 || q.Limit != 2 {
		t.Fatalf("quota %+v, want 1 used of 2", q)
	}
}

func TestConcurrentCreatesRespectQuota(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetQuota(ctx, "o", 37); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 100)
	for range 100 {
		go func() { errs <- db.CreateDeployment(ctx, newDeployment("p", "o")) }()
	}
	ok, refused := 0, 0
	timeout := time.After(30 * time.Second)
	for range 100 {
		select {
		case err := <-errs:
			switch {
			case err == nil:
				ok++
			case libra.ErrorCode(err) == libra.CodeQuotaExceeded:
				refused++
			default:
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("timed out")
		}
	}
	if ok != 37 || refused != 63 {
		t.Fatalf("%d accepted, %d refused; want 37 and 63", ok, refused)
	}
}

// ListProjects lists one org's projects, by id in byte order, whether or not
// they have deployments.
func TestListProjects(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	for _, p := range []libra.Project{
		{ID: "zeta", OrgID: "o1", Name: "Z"},
		{ID: "Alpha", OrgID: "o1", Name: "A"},
		{ID: "other", OrgID: "o2", Name: "O"},
		{ID: "beta", OrgID: "o1", Name: "B"},
	} {
		p.CreatedAt = libra.Now()
		if err := db.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	d := newDeployment("beta", "o1")
	if err := db.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := db.Publish(ctx, d.ID, "sha256:m", "http://x/"); err != nil {
		t.Fatal(err)
	}

	got, err := db.ListProjects(ctx, "o1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range got {
		ids = append(ids, p.ID)
		if p.OrgID != "o1" || p.CreatedAt.IsZero() {
			t.Errorf("project %+v", p)
		}
		if want := map[string]string{"beta": d.ID}[p.ID]; p.Current != want {
			t.Errorf("%s current = %q, want %q", p.ID, p.Current, want)
		}
	}
	if strings.Join(ids, ",") != "Alpha,beta,zeta" {
		t.Fatalf("o1 projects %v, want Alpha,beta,zeta", ids)
	}
	if got[0].Name != "A" {
		t.Errorf("name %q", got[0].Name)
	}
	if got, err := db.ListProjects(ctx, "o2"); err != nil || len(got) != 1 || got[0].ID != "other" {
		t.Fatalf("o2 projects %+v, %v", got, err)
	}
	none, err := db.ListProjects(ctx, "nobody")
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("org without projects: %#v, %v; want an empty slice", none, err)
	}
}
