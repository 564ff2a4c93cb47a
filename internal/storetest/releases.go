package storetest

import (
	"errors"
	"slices"
	"sync"
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

// createMany accepts n deployments of project from 8 goroutines and returns
// them in acceptance order (by their place in the project's list).
func createMany(t *testing.T, s libra.Store, project string, n int) []string {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := s.CreateDeployment(ctx, newDeployment(project, "o")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var out []string
	err := s.EachDeploymentRefs(ctx, project, func(r libra.DeploymentRefs) error {
		out = append(out, r.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// More deployments than one page of references (500) or one pruning
// batch (200): every one is seen once, in order, and pruning goes on until
// nothing is left to prune.
func testManyDeployments(t *testing.T, s libra.Store) {
	const n = 1001
	mustProject(t, s, "big", "o")
	seen := createMany(t, s, "big", n)
	if len(seen) != n || len(uniq(seen)) != n {
		t.Fatalf("EachDeploymentRefs saw %d deployments (%d distinct), want %d", len(seen), len(uniq(seen)), n)
	}
	page, err := s.ListDeployments(ctx, "big", "", n)
	if err != nil || page.Total != n || page.Deployments[0].ID != seen[n-1] || page.Deployments[n-1].ID != seen[0] {
		t.Fatalf("list of %d: total %d (%v); the refs' order and the list's disagree", n, page.Total, err)
	}
	for _, info := range page.Deployments[:450] { // the 450 newest fail
		d, err := s.Deployment(ctx, info.ID)
		if err != nil {
			t.Fatal(err)
		}
		finish(t, s, d, libra.StatusFailed)
	}
	pruned, err := s.PruneDeployments(ctx, 10, false)
	if err != nil || len(pruned) != 440 || len(uniq(prunedIDs(pruned))) != 440 {
		t.Fatalf("pruned %d (%v), want the 440 final deployments below the newest 10", len(pruned), err)
	}
	if page, err := s.ListDeployments(ctx, "big", "", 1); err != nil || page.Total != n-440 {
		t.Fatalf("%d left (%v), want %d", page.Total, err, n-440)
	}
}

func uniq(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}
