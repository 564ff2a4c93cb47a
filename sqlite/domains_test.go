package sqlite_test

import (
	"context"
	"sync"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Two nodes asking for a project's token at once agree on one token, and
// it stays the same afterwards.
func TestDomainTokenIsOnePerProject(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	for _, id := range []string{"shop", "blog"} {
		if err := db.CreateProject(ctx, libra.Project{ID: id, OrgID: "acme", Name: id, CreatedAt: libra.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	tokens := make([]string, 8)
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := db.DomainToken(ctx, "shop")
			if err != nil {
				t.Error(err)
			}
			tokens[i] = tok
		}()
	}
	wg.Wait()
	for _, tok := range tokens {
		if tok != tokens[0] || len(tok) < len("libra-verify-")+32 {
			t.Fatalf("tokens %q", tokens)
		}
	}
	if other, err := db.DomainToken(ctx, "blog"); err != nil || other == tokens[0] {
		t.Fatalf("blog's token %q (%v), shop's %q", other, err, tokens[0])
	}
	if _, err := db.DomainToken(ctx, "nope"); libra.ErrorCode(err) != libra.CodeProjectNotFound {
		t.Fatalf("token of an unknown project: %v", err)
	}
}

func TestDomainChecks(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := db.CreateProject(ctx, libra.Project{ID: "shop", OrgID: "acme", Name: "shop", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddDomain(ctx, "shop", "www.shop.test"); err != nil {
		t.Fatal(err)
	}
	missing := libra.DomainCheck{Definitive: true, Reason: "no record"}
	failed := libra.DomainCheck{Reason: "timeout"}
	steps := []struct {
		name     string
		check    libra.DomainCheck
		verified bool
		errText  string
	}{
		{"record missing", missing, false, "no record"},
		{"verified", libra.DomainCheck{Verified: true}, true, ""},
		{"lookup failed keeps verified", failed, true, "timeout"},
		{"verified again", libra.DomainCheck{Verified: true}, true, ""},
		{"record gone makes it pending", missing, false, "no record"},
	}
	var firstVerified *time.Time
	for _, st := range steps {
		d, err := db.RecordDomainCheck(ctx, "shop", "www.shop.test", st.check)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if (d.VerifiedAt != nil) != st.verified || d.CheckError != st.errText || d.CheckedAt == nil {
			t.Fatalf("%s: got %+v", st.name, d)
		}
		org, err := db.VerifiedDomainOrg(ctx, "www.shop.test")
		if err != nil || (org == "acme") != st.verified {
			t.Fatalf("%s: VerifiedDomainOrg = %q, %v", st.name, org, err)
		}
		if d.VerifiedAt != nil && firstVerified == nil {
			firstVerified = d.VerifiedAt
		} else if d.VerifiedAt != nil && !d.VerifiedAt.Equal(*firstVerified) {
			t.Fatalf("%s: verifiedAt moved from %v to %v", st.name, firstVerified, d.VerifiedAt)
		}
	}
	if _, err := db.RecordDomainCheck(ctx, "other", "www.shop.test", missing); libra.ErrorCode(err) != libra.CodeNotFound {
		t.Fatalf("check of another project's domain: %v", err)
	}
}

func TestPendingDomains(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	for _, id := range []string{"shown", "hidden"} {
		if err := db.CreateProject(ctx, libra.Project{ID: id, OrgID: "acme", Name: id, CreatedAt: libra.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range [][2]string{{"shown", "a.example.test"}, {"shown", "b.example.test"}, {"shown", "c.example.test"}, {"hidden", "h.example.test"}} {
		if _, err := db.AddDomain(ctx, a[0], a[1]); err != nil {
			t.Fatal(err)
		}
	}
	token, err := db.DomainToken(ctx, "shown")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordDomainCheck(ctx, "shown", "c.example.test", libra.DomainCheck{Verified: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordDomainCheck(ctx, "shown", "b.example.test", libra.DomainCheck{Reason: "timeout"}); err != nil {
		t.Fatal(err)
	}
	now := libra.Now()
	week := now.Add(-7 * 24 * time.Hour)
	tests := []struct {
		name                         string
		attachedAfter, checkedBefore time.Time
		limit                        int
		want                         []string
	}{
		// c is verified, h's project never showed its token; a was
		// never checked, so it comes before b.
		{"all due", week, now.Add(time.Second), 10, []string{"a.example.test", "b.example.test"}},
		{"limit", week, now.Add(time.Second), 1, []string{"a.example.test"}},
		{"b checked recently", week, now.Add(-time.Hour), 10, []string{"a.example.test"}},
		{"attached too long ago", now.Add(time.Hour), now.Add(time.Second), 10, nil},
	}
	for _, tt := range tests {
		got, err := db.PendingDomains(ctx, tt.attachedAfter, tt.checkedBefore, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, d := range got {
			names = append(names, d.Domain)
			if d.Token != token || d.ProjectID != "shown" {
				t.Errorf("%s: %+v", tt.name, d)
			}
		}
		if len(names) != len(tt.want) || len(names) > 0 && names[0] != tt.want[0] || len(names) > 1 && names[1] != tt.want[1] {
			t.Errorf("%s: got %v, want %v", tt.name, names, tt.want)
		}
	}
}
