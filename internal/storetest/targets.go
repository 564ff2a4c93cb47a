package storetest

import (
	"errors"
	"slices"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// Deployment targets and stable aliases (issue 11).

func mustDeployAs(t *testing.T, s libra.Store, project string, target libra.Target, alias string) *libra.Deployment {
	t.Helper()
	d := newDeployment(project, "o")
	d.Target, d.Alias = target, alias
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	return d
}

func production(t *testing.T, s libra.Store, projectHost string) string {
	t.Helper()
	id, _, err := s.SiteByProject(ctx, projectHost)
	if errors.Is(err, libra.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatalf("production of %s: %v", projectHost, err)
	}
	return id
}

// A preview publishes at its own label only: production, the newest-wins
// mark and custom domains stay where they were; both are read back.
func testPreviewTarget(t *testing.T, s libra.Store) {
	mustProject(t, s, "web", "o")
	prod := mustDeployAs(t, s, "web", "", "")
	complete(t, s, prod)
	preview := mustDeployAs(t, s, "web", libra.TargetPreview, "")
	complete(t, s, preview)
	if got := production(t, s, "web"); got != prod.ID {
		t.Fatalf("production serves %s after a preview published, want %s", got, prod.ID)
	}
	if id, _, err := s.SiteByLabel(ctx, preview.SiteLabel); err != nil || id != preview.ID {
		t.Fatalf("the preview's own label serves %s (%v)", id, err)
	}
	got, err := s.Deployment(ctx, preview.ID)
	if err != nil || got.Target != libra.TargetPreview || got.Alias != "" {
		t.Fatalf("preview read back as %+v (%v)", got, err)
	}
	if got, _ := s.Deployment(ctx, prod.ID); got.Target != libra.TargetProduction {
		t.Fatalf("a deployment without a target is stored as %q, want production", got.Target)
	}
	page, err := s.ListDeployments(ctx, "web", "", 10)
	if err != nil || len(page.Deployments) != 2 || page.Deployments[0].Target != libra.TargetPreview ||
		page.Deployments[1].Target != libra.TargetProduction || page.Deployments[0].Production {
		t.Fatalf("list: %+v (%v)", page, err)
	}
}

// Promoting a preview (Rollback to a newer deployment) raises the
// newest-wins mark: an older production deployment that publishes later
// does not take production back; a newer one does.
func testPromoteNewestWins(t *testing.T, s libra.Store) {
	mustProject(t, s, "web", "o")
	first := mustDeployAs(t, s, "web", "", "")
	complete(t, s, first)
	slow := mustDeployAs(t, s, "web", "", "") // accepted before the preview, finishes after the promote
	preview := mustDeployAs(t, s, "web", libra.TargetPreview, "")
	complete(t, s, preview)
	if err := s.Rollback(ctx, "web", preview.ID); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if got := production(t, s, "web"); got != preview.ID {
		t.Fatalf("production serves %s after promote, want the preview %s", got, preview.ID)
	}
	complete(t, s, slow)
	if got := production(t, s, "web"); got != preview.ID {
		t.Fatalf("an older deployment that published later took production back: %s", got)
	}
	rel, err := s.ProjectRelease(ctx, "web")
	if err != nil || rel.Production == nil || rel.Production.ID != preview.ID || rel.Pinned {
		t.Fatalf("release after promote: %+v (%v)", rel, err)
	}
	next := mustDeployAs(t, s, "web", "", "")
	complete(t, s, next)
	if got := production(t, s, "web"); got != next.ID {
		t.Fatalf("a newer production deployment did not move production: %s", got)
	}
	// A rollback to an older one still pins, as before.
	if err := s.Rollback(ctx, "web", first.ID); err != nil {
		t.Fatal(err)
	}
	if rel, _ := s.ProjectRelease(ctx, "web"); rel.Production.ID != first.ID || !rel.Pinned {
		t.Fatalf("rollback after promote: %+v", rel)
	}
}

// An alias label serves the newest published deployment with that alias;
// aliases are independent; a deployment still running, or never
// published, does not move it; deleting the newest falls back.
func testAliases(t *testing.T, s libra.Store) {
	mustProject(t, s, "web", "o")
	a1 := mustDeployAs(t, s, "web", libra.TargetPreview, "feat")
	b1 := mustDeployAs(t, s, "web", libra.TargetPreview, "fix")
	a2 := mustDeployAs(t, s, "web", libra.TargetPreview, "feat")
	failed := mustDeployAs(t, s, "web", libra.TargetPreview, "feat")
	complete(t, s, a2)
	complete(t, s, a1) // older, finishes later: the alias stays on a2
	complete(t, s, b1)
	finish(t, s, failed, libra.StatusFailed)
	tests := []struct{ label, want string }{
		{"feat--web", a2.ID},
		{"fix--web", b1.ID},
		{"other--web", ""},
		{"feat--nosuch", ""},
		{"feat", ""},
	}
	for _, tt := range tests {
		id, _, err := s.SiteByLabel(ctx, tt.label)
		if tt.want == "" && !errors.Is(err, libra.ErrNotFound) || tt.want != "" && (err != nil || id != tt.want) {
			t.Fatalf("%s serves %q (%v), want %q", tt.label, id, err, tt.want)
		}
	}
	if got := production(t, s, "web"); got != "" {
		t.Fatalf("previews with aliases moved production to %s", got)
	}
	if err := s.DeleteDeployment(ctx, a2.ID); err != nil {
		t.Fatal(err)
	}
	if id, _, err := s.SiteByLabel(ctx, "feat--web"); err != nil || id != a1.ID {
		t.Fatalf("after deleting the alias's newest it serves %s (%v), want %s", id, err, a1.ID)
	}
}

// A label that is a deployment's site label is that deployment's, even
// unpublished, whatever alias spells the same label.
func testAliasNeverShadowsSiteLabel(t *testing.T, s libra.Store) {
	mustProject(t, s, "victim", "o")
	victim := mustDeploy(t, s, "victim", "o")
	name, random, ok := libra.SplitAliasLabel(victim.SiteLabel)
	if !ok {
		t.Fatalf("site label %q does not split", victim.SiteLabel)
	}
	// The API refuses such an alias (CheckAlias); the store must hold
	// even for rows that got in some other way.
	mustProject(t, s, random, "attacker")
	evil := mustDeployAs(t, s, random, libra.TargetPreview, name)
	complete(t, s, evil)
	if id, _, err := s.SiteByLabel(ctx, victim.SiteLabel); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("the victim's unpublished label serves %s (%v): an alias took it", id, err)
	}
	complete(t, s, victim)
	if id, _, err := s.SiteByLabel(ctx, victim.SiteLabel); err != nil || id != victim.ID {
		t.Fatalf("the victim's label serves %s (%v)", id, err)
	}
}

// Retention keeps what each alias serves, as it keeps production; project
// deletion takes the aliases away.
func testAliasRetention(t *testing.T, s libra.Store) {
	mustProject(t, s, "web", "o")
	head := mustDeployAs(t, s, "web", libra.TargetPreview, "feat")
	complete(t, s, head)
	old := mustDeployAs(t, s, "web", libra.TargetPreview, "fix")
	complete(t, s, old)
	fix := mustDeployAs(t, s, "web", libra.TargetPreview, "fix")
	complete(t, s, fix)
	var rest []*libra.Deployment
	for range 3 {
		d := mustDeployAs(t, s, "web", "", "")
		complete(t, s, d)
		rest = append(rest, d)
	}
	pruned, err := s.PruneDeployments(ctx, 1, false)
	// fix is the "fix" alias's newest, so it stays; old does not.
	want := []string{old.ID, rest[0].ID, rest[1].ID}
	if err != nil || !slices.Equal(prunedIDs(pruned), want) {
		t.Fatalf("pruned %v (%v), want %v", prunedIDs(pruned), err, want)
	}
	for label, id := range map[string]string{"feat--web": head.ID, "fix--web": fix.ID} {
		if got, _, err := s.SiteByLabel(ctx, label); err != nil || got != id {
			t.Fatalf("after retention %s serves %s (%v), want %s", label, got, err, id)
		}
	}
	if _, err := s.DeleteProject(ctx, "o", "web"); err != nil {
		t.Fatal(err)
	}
	mustProject(t, s, "web", "o2")
	if id, _, err := s.SiteByLabel(ctx, "feat--web"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("a deleted project's alias still serves %s (%v)", id, err)
	}
}
