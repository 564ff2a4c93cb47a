package storetest

import (
	"errors"
	"slices"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// testDeleteProject: refused while a deployment is queued, then everything
// of the project goes (deployments, logs, sites, domains) and nothing of
// another project; the id and the domains are free again, and a new project
// of the same id serves none of the old deployments.
func testDeleteProject(t *testing.T, s libra.Store) {
	mustProject(t, s, "shop", "o")
	mustProject(t, s, "keep", "o")
	old, prod, queued := mustDeploy(t, s, "shop", "o"), mustDeploy(t, s, "shop", "o"), mustDeploy(t, s, "shop", "o")
	other := mustDeploy(t, s, "keep", "o")
	complete(t, s, old)
	complete(t, s, prod)
	complete(t, s, other)
	if _, err := s.AddDomain(ctx, "shop", "www.shop.test"); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, old.ID, []libra.LogEntry{{Time: libra.Now(), Step: libra.StepBuild, Level: "info", Message: "x"}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.DeleteProject(ctx, "o", "shop")
	wantCode(t, "delete with a queued deployment", err, libra.CodeConflict)
	if _, err := s.Deployment(ctx, old.ID); err != nil {
		t.Fatalf("a refused delete removed a deployment: %v", err)
	}
	finish(t, s, queued, libra.StatusFailed)
	if _, err := s.DeleteProject(ctx, "o2", "shop"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("delete through another org: %v, want ErrNotFound", err)
	}
	if _, err := s.Project(ctx, "shop"); err != nil {
		t.Fatalf("another org's delete removed the project: %v", err)
	}

	del, err := s.DeleteProject(ctx, "o", "shop")
	if err != nil {
		t.Fatal(err)
	}
	labels := []string{old.SiteLabel, prod.SiteLabel, queued.SiteLabel}
	slices.Sort(labels)
	slices.Sort(del.SiteLabels)
	if !slices.Equal(del.SiteLabels, labels) || !slices.Equal(del.Domains, []string{"www.shop.test"}) {
		t.Fatalf("deletion %+v, want labels %v and the domain", del, labels)
	}
	checkProjectGone(t, s, "shop", old, prod)
	if _, _, err := s.SiteByLabel(ctx, other.SiteLabel); err != nil {
		t.Fatalf("another project's deployment stopped serving: %v", err)
	}
	if _, err := s.DeleteProject(ctx, "o", "shop"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("delete again: %v, want ErrNotFound", err)
	}
	mustProject(t, s, "shop", "o2")
	if _, _, err := s.SiteByProject(ctx, "shop"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("a new project of the old id serves something: %v", err)
	}
	if added, err := s.AddDomain(ctx, "keep", "www.shop.test"); err != nil || !added {
		t.Fatalf("the deleted project's domain is not free: %v %v", added, err)
	}
}

func checkProjectGone(t *testing.T, s libra.Store, id string, ds ...*libra.Deployment) {
	t.Helper()
	if _, err := s.Project(ctx, id); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("deleted project: %v", err)
	}
	for _, d := range ds {
		if _, err := s.Deployment(ctx, d.ID); !errors.Is(err, libra.ErrNotFound) {
			t.Fatalf("deployment of a deleted project: %v", err)
		}
		if logs, err := s.Logs(ctx, d.ID, 10); err != nil || len(logs) != 0 {
			t.Fatalf("logs of a deleted project: %v, %v", logs, err)
		}
		if _, _, err := s.SiteByLabel(ctx, d.SiteLabel); !errors.Is(err, libra.ErrNotFound) {
			t.Fatalf("deleted project's deployment still served: %v", err)
		}
	}
	if owner, err := s.DomainOwner(ctx, "www.shop.test"); err != nil || owner != "" {
		t.Fatalf("deleted project's domain still owned: %q %v", owner, err)
	}
	if _, _, err := s.SiteByProject(ctx, id); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("deleted project's alias still served: %v", err)
	}
}
