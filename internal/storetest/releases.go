package storetest

import (
	"errors"
	"slices"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// 25 deployments in pages of 10: newest first, every one exactly once, the
// total on each page, and production marked.
func testListDeployments(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	mustProject(t, s, "q", "o")
	var want []string
	for range 25 {
		want = append(want, mustDeploy(t, s, "p", "o").ID)
	}
	mustDeploy(t, s, "q", "o")
	slices.Reverse(want)
	prod := want[3]
	if err := s.Publish(ctx, prod, "sha256:m", "http://x/"); err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor, pages := "", 0
	for {
		page, err := s.ListDeployments(ctx, "p", cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if page.Total != 25 {
			t.Fatalf("page %d: total %d, want 25", pages, page.Total)
		}
		for _, d := range page.Deployments {
			got = append(got, d.ID)
			if d.Production != (d.ID == prod) || d.ProjectID != "p" || d.Status != libra.StatusQueued {
				t.Fatalf("listed %+v", d)
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Fatalf("%d pages listing %v\nwant %v", pages, got, want)
	}
	for _, bad := range []string{"abc", "-1", "0", "1.5"} {
		_, err := s.ListDeployments(ctx, "p", bad, 10)
		wantCode(t, "cursor "+bad, err, libra.CodeValidation)
	}
	if page, err := s.ListDeployments(ctx, "none", "", 10); err != nil || page.Total != 0 || page.Deployments == nil || page.Next != "" {
		t.Fatalf("project without deployments: %+v, %v", page, err)
	}
}

func testRollback(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	mustProject(t, s, "other", "o")
	rel, err := s.ProjectRelease(ctx, "p")
	if err != nil || rel.Production != nil || rel.Pinned {
		t.Fatalf("release before any deployment: %+v, %v", rel, err)
	}
	if _, err := s.ProjectRelease(ctx, "nope"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("release of an unknown project: %v", err)
	}
	first, second := mustDeploy(t, s, "p", "o"), mustDeploy(t, s, "p", "o")
	complete(t, s, first)
	complete(t, s, second)
	queued := mustDeploy(t, s, "p", "o")
	foreign := mustDeploy(t, s, "other", "o")
	complete(t, s, foreign)

	errs := []struct {
		target, code string
	}{
		{"nope", libra.CodeDeploymentNotFound},
		{foreign.ID, libra.CodeDeploymentNotFound}, // another project's: not revealed
		{queued.ID, libra.CodeConflict},
	}
	for _, e := range errs {
		wantCode(t, "rollback to "+e.target, s.Rollback(ctx, "p", e.target), e.code)
	}
	if err := s.Rollback(ctx, "p", first.ID); err != nil {
		t.Fatal(err)
	}
	rel, err = s.ProjectRelease(ctx, "p")
	if err != nil || rel.Production == nil || rel.Production.ID != first.ID || !rel.Pinned || !rel.Production.Production {
		t.Fatalf("release after rollback: %+v, %v", rel, err)
	}
	if id, _, err := s.SiteByProject(ctx, "p"); err != nil || id != first.ID {
		t.Fatalf("alias after rollback serves %s, %v", id, err)
	}
	// The next newer deployment moves the alias forward again.
	complete(t, s, queued)
	rel, err = s.ProjectRelease(ctx, "p")
	if err != nil || rel.Production == nil || rel.Production.ID != queued.ID || rel.Pinned {
		t.Fatalf("release after a newer publish: %+v, %v", rel, err)
	}
}

func testDeleteDeployment(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	old, prod, running := mustDeploy(t, s, "p", "o"), mustDeploy(t, s, "p", "o"), mustDeploy(t, s, "p", "o")
	complete(t, s, old)
	complete(t, s, prod)
	if err := s.AppendLogs(ctx, old.ID, []libra.LogEntry{{Time: libra.Now(), Step: libra.StepBuild, Level: "info", Message: "x"}}); err != nil {
		t.Fatal(err)
	}
	errs := []struct{ id, code string }{
		{"nope", libra.CodeDeploymentNotFound},
		{prod.ID, libra.CodeConflict},
		{running.ID, libra.CodeConflict},
	}
	for _, e := range errs {
		wantCode(t, "delete "+e.id, s.DeleteDeployment(ctx, e.id), e.code)
	}
	if err := s.DeleteDeployment(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deployment(ctx, old.ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("deleted deployment: %v", err)
	}
	if logs, err := s.Logs(ctx, old.ID, 10); err != nil || len(logs) != 0 {
		t.Fatalf("deleted deployment's logs: %v, %v", logs, err)
	}
	if _, _, err := s.SiteByLabel(ctx, old.SiteLabel); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("deleted deployment still served: %v", err)
	}
	wantCode(t, "delete again", s.DeleteDeployment(ctx, old.ID), libra.CodeDeploymentNotFound)
}

// Retention keeps each project's newest keep deployments, production
// whatever its age, and anything not final.
func testRetention(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	mustProject(t, s, "small", "o")
	var ds []*libra.Deployment
	for range 6 {
		ds = append(ds, mustDeploy(t, s, "p", "o"))
	}
	for _, d := range ds[:5] {
		complete(t, s, d)
	}
	finish(t, s, ds[1], libra.StatusFailed)
	// ds[5] stays queued; ds[0] becomes production again.
	if err := s.Rollback(ctx, "p", ds[0].ID); err != nil {
		t.Fatal(err)
	}
	mustDeploy(t, s, "small", "o")
	want := []string{ds[1].ID, ds[2].ID, ds[3].ID} // newest 2 are ds[5], ds[4]

	if _, err := s.PruneDeployments(ctx, 0, true); err == nil {
		t.Fatal("keep 0 accepted")
	}
	dry, err := s.PruneDeployments(ctx, 2, true)
	if err != nil || !slices.Equal(prunedIDs(dry), want) {
		t.Fatalf("dry run prunes %v (%v), want %v", prunedIDs(dry), err, want)
	}
	if page, _ := s.ListDeployments(ctx, "p", "", 100); page.Total != 6 {
		t.Fatalf("dry run deleted: %d left", page.Total)
	}
	got, err := s.PruneDeployments(ctx, 2, false)
	if err != nil || !slices.Equal(prunedIDs(got), want) {
		t.Fatalf("pruned %v (%v), want %v", prunedIDs(got), err, want)
	}
	if got[0].SiteLabel != ds[1].SiteLabel || got[0].ProjectID != "p" || got[0].Status != libra.StatusFailed || got[0].CreatedAt.IsZero() {
		t.Fatalf("pruned %+v", got[0])
	}
	page, err := s.ListDeployments(ctx, "p", "", 100)
	if err != nil || ids(page.Deployments) != ds[5].ID+","+ds[4].ID+","+ds[0].ID+"," {
		t.Fatalf("kept %s (%v)", ids(page.Deployments), err)
	}
	if again, err := s.PruneDeployments(ctx, 2, false); err != nil || len(again) != 0 {
		t.Fatalf("second prune: %v, %v", prunedIDs(again), err)
	}
}

func prunedIDs(ps []libra.PrunedDeployment) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func testDeploymentRefs(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	mustProject(t, s, "q", "o")
	var want []string
	for i := range 3 {
		d := mustDeploy(t, s, []string{"p", "q", "p"}[i], "o")
		want = append(want, d.ID)
	}
	complete(t, s, mustDeployLater(t, s, &want))
	tests := []struct {
		project string
		want    []string
	}{
		{"", want},
		{"p", []string{want[0], want[2], want[3]}},
		{"q", []string{want[1]}},
		{"none", nil},
	}
	for _, tt := range tests {
		var got []string
		err := s.EachDeploymentRefs(ctx, tt.project, func(r libra.DeploymentRefs) error {
			got = append(got, r.ID)
			if len(r.Inputs) != 1 || r.Inputs[0].Digest != "sha256:00" {
				t.Errorf("refs of %s: inputs %+v", r.ID, r.Inputs)
			}
			if r.ID == want[3] && (r.Manifest == "" || r.Status != libra.StatusCompleted) {
				t.Errorf("refs of the published deployment: %+v", r)
			}
			return nil
		})
		if err != nil || !slices.Equal(got, tt.want) {
			t.Fatalf("project %q: refs %v (%v), want %v", tt.project, got, err, tt.want)
		}
	}
	stop := errors.New("stop")
	if err := s.EachDeploymentRefs(ctx, "", func(libra.DeploymentRefs) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn's error is returned: %v", err)
	}
}

func mustDeployLater(t *testing.T, s libra.Store, ids *[]string) *libra.Deployment {
	d := mustDeploy(t, s, "p", "o")
	*ids = append(*ids, d.ID)
	return d
}
