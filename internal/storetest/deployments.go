package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

func testDeploymentRoundTrip(t *testing.T, s libra.Store) {
	mustProject(t, s, "Site", "o")
	d := newDeployment("Site", "o")
	d.CustomDomain = "www.site.test"
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.SiteLabel, "--") {
		t.Fatalf("site label %q is not in the deployment namespace", d.SiteLabel)
	}
	got, err := s.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SiteLabel != d.SiteLabel || got.ProjectID != "Site" || got.OrgID != "o" || got.UserID != "u" ||
		got.CustomDomain != d.CustomDomain || got.Status != libra.StatusQueued || got.QuotaMonth != month ||
		len(got.Steps) != len(libra.Steps) || len(got.Input) != 1 || got.Input[0].Digest != d.Input[0].Digest || got.Input[0].Path != d.Input[0].Path ||
		!sameTime(got.CreatedAt, d.CreatedAt) || got.StartedAt != nil || got.FinishedAt != nil {
		t.Fatalf("stored %+v\nwant %+v", got, d)
	}
	if _, err := s.Deployment(ctx, "nope"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("unknown deployment: %v", err)
	}

	// Progress only moves forward; everything else is saved as given.
	started := libra.Now()
	steps := []struct {
		progress, want int
		step           libra.Step
	}{
		{50, 50, libra.StepBuild},
		{33, 50, libra.StepValidate}, // a retried step does not take it back
		{100, 100, libra.StepCleanup},
	}
	for _, st := range steps {
		d.Status, d.Progress, d.CurrentStep, d.Attempt, d.StartedAt = libra.StatusInProgress, st.progress, st.step, 2, &started
		d.Steps[st.step] = libra.StepState{Status: libra.StepCompleted, Timestamp: &started}
		d.Error, d.URL = "e-"+string(st.step), "http://u/"
		if err := s.UpdateDeployment(ctx, d, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.Deployment(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Progress != st.want || got.CurrentStep != st.step || got.Attempt != 2 || got.Error != d.Error ||
			got.URL != d.URL || got.StartedAt == nil || !sameTime(*got.StartedAt, started) ||
			got.Steps[st.step].Status != libra.StepCompleted {
			t.Fatalf("after progress %d: %+v", st.progress, got)
		}
	}
}

func testLogs(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	other := mustDeploy(t, s, "p", "o")
	base := libra.Now()
	line := func(i int) libra.LogEntry {
		return libra.LogEntry{Time: base.Add(time.Duration(i) * time.Millisecond), Step: libra.StepBuild, Level: "info",
			Message: fmt.Sprintf("line %d: it's \"quoted\", ünïcode, $1 ?", i)}
	}
	var first []libra.LogEntry
	for i := range 400 { // more than one multi-row INSERT of SQLite's
		first = append(first, line(i))
	}
	if err := s.AppendLogs(ctx, d.ID, first); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, d.ID, nil); err != nil {
		t.Fatal(err)
	}
	d.Status = libra.StatusInProgress
	if err := s.UpdateDeployment(ctx, d, []libra.LogEntry{line(400), line(401)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, other.ID, []libra.LogEntry{line(999)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ limit, want, firstLine int }{
		{1000, 402, 0},
		{10, 10, 392}, // the last ten, oldest first
		{1, 1, 401},
	}
	for _, tt := range tests {
		got, err := s.Logs(ctx, d.ID, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Fatalf("limit %d: %d lines, want %d", tt.limit, len(got), tt.want)
		}
		for i, e := range got {
			want := line(tt.firstLine + i)
			if e.Message != want.Message || e.Step != want.Step || e.Level != "info" || !sameTime(e.Time, want.Time) {
				t.Fatalf("limit %d, line %d: %+v, want %+v", tt.limit, i, e, want)
			}
		}
	}
	if got, err := s.Logs(ctx, "none", 10); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("logs of nothing: %#v, %v", got, err)
	}
}

// An older deployment that finishes after a newer one must not take the
// production alias back.
func testPublishNewestWins(t *testing.T, s libra.Store) {
	mustProject(t, s, "Site", "o")
	older, newer := mustDeploy(t, s, "Site", "o"), mustDeploy(t, s, "Site", "o")
	steps := []struct {
		publish  *libra.Deployment
		manifest string
		want     string
	}{
		{newer, "sha256:newer", newer.ID},
		{older, "sha256:older", newer.ID}, // finished later, but older
	}
	for _, st := range steps {
		if err := s.Publish(ctx, st.publish.ID, st.manifest, "http://x/"); err != nil {
			t.Fatal(err)
		}
		id, manifest, err := s.SiteByProject(ctx, "site") // the alias host is the lower-cased id
		if err != nil {
			t.Fatal(err)
		}
		if id != st.want || manifest != "sha256:newer" {
			t.Fatalf("alias serves %s (%s), want %s", id, manifest, st.want)
		}
	}
	// The older deployment still has its own immutable site.
	if id, m, err := s.SiteByLabel(ctx, older.SiteLabel); err != nil || id != older.ID || m != "sha256:older" {
		t.Fatalf("older deployment's site: %s %q %v", id, m, err)
	}
	if _, _, err := s.SiteByLabel(ctx, older.ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("a deployment id is not a site label, got %v", err)
	}
	if _, _, err := s.SiteByProject(ctx, "nosuch"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("unknown alias: %v", err)
	}
	if err := s.Publish(ctx, "nope", "sha256:x", "http://x/"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("publishing an unknown deployment: %v", err)
	}
}

// Twenty deployments publishing at once, in random order: the alias ends on
// the newest whatever the order in which their transactions commit.
func testConcurrentPublish(t *testing.T, s libra.Store) {
	mustProject(t, s, "race", "o")
	var ds []*libra.Deployment
	for range 20 {
		ds = append(ds, mustDeploy(t, s, "race", "o"))
	}
	newest := ds[len(ds)-1]
	order := rand.Perm(len(ds))
	var wg sync.WaitGroup
	for _, i := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Publish(ctx, ds[i].ID, "sha256:"+ds[i].ID, "http://x/"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	id, manifest, err := s.SiteByProject(ctx, "race")
	if err != nil || id != newest.ID || manifest != "sha256:"+newest.ID {
		t.Fatalf("alias serves %s (%s, %v), want the newest %s", id, manifest, err, newest.ID)
	}
}

// A deployment with a custom domain attaches it when it publishes; a domain
// serves only once verified; another project cannot take it.
func testPublishCustomDomain(t *testing.T, s libra.Store) {
	mustProject(t, s, "shop", "acme")
	mustProject(t, s, "thief", "evil")
	d := newDeployment("shop", "acme")
	d.CustomDomain = "www.shop.test"
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, d.ID, "sha256:shop", "http://x/"); err != nil {
		t.Fatal(err)
	}
	if owner, err := s.DomainOwner(ctx, "www.shop.test"); err != nil || owner != "shop" {
		t.Fatalf("owner %q, %v", owner, err)
	}
	if owner, err := s.DomainOwner(ctx, "unknown.test"); err != nil || owner != "" {
		t.Fatalf("owner of an unknown domain %q, %v", owner, err)
	}
	if _, _, err := s.SiteByDomain(ctx, "www.shop.test"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("a pending domain serves: %v", err)
	}
	if _, err := s.RecordDomainCheck(ctx, "shop", "www.shop.test", libra.DomainCheck{Verified: true}); err != nil {
		t.Fatal(err)
	}
	if id, m, err := s.SiteByDomain(ctx, "www.shop.test"); err != nil || id != d.ID || m != "sha256:shop" {
		t.Fatalf("verified domain serves %s %s %v", id, m, err)
	}
	steal := newDeployment("thief", "evil")
	steal.CustomDomain = "www.shop.test"
	if err := s.CreateDeployment(ctx, steal); err != nil {
		t.Fatal(err)
	}
	err := s.Publish(ctx, steal.ID, "sha256:evil", "http://x/")
	wantCode(t, "publishing onto another project's domain", err, libra.CodeDomainTaken)
	if !libra.IsPermanent(err) {
		t.Fatalf("DOMAIN_TAKEN on publish must be permanent: %v", err)
	}
	if _, _, err := s.SiteByProject(ctx, "thief"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("the refused publish moved the thief's alias: %v", err)
	}
}
