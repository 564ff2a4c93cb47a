package storetest

import (
	"sync"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

func testDomains(t *testing.T, s libra.Store) {
	mustProject(t, s, "shop", "acme")
	mustProject(t, s, "blog", "acme")
	steps := []struct {
		project, domain string
		added           bool
		code            string
	}{
		{"shop", "b.shop.test", true, ""},
		{"shop", "a.shop.test", true, ""},
		{"shop", "b.shop.test", false, ""}, // again: not an error
		{"blog", "b.shop.test", false, libra.CodeDomainTaken},
	}
	for _, st := range steps {
		added, err := s.AddDomain(ctx, st.project, st.domain)
		wantCode(t, st.project+" adds "+st.domain, err, st.code)
		if added != st.added {
			t.Fatalf("%s adds %s: added %v, want %v", st.project, st.domain, added, st.added)
		}
	}
	got, err := s.Domains(ctx, "shop")
	if err != nil || len(got) != 2 || got[0].Domain != "b.shop.test" || got[1].Domain != "a.shop.test" {
		t.Fatalf("shop's domains, oldest first: %+v, %v", got, err)
	}
	if got[0].VerifiedAt != nil || got[0].CheckedAt != nil || got[0].ProjectID != "shop" || got[0].CreatedAt.IsZero() {
		t.Fatalf("a new domain is pending and unchecked: %+v", got[0])
	}
	wantCode(t, "blog removes shop's domain", s.RemoveDomain(ctx, "blog", "b.shop.test"), libra.CodeNotFound)
	if err := s.RemoveDomain(ctx, "shop", "b.shop.test"); err != nil {
		t.Fatal(err)
	}
	if none, err := s.Domains(ctx, "blog"); err != nil || none == nil || len(none) != 0 {
		t.Fatalf("blog's domains: %#v, %v; want an empty slice", none, err)
	}
	if added, err := s.AddDomain(ctx, "blog", "b.shop.test"); err != nil || !added {
		t.Fatalf("a removed domain is free again: %v %v", added, err)
	}
}

// Two nodes asking for a project's token at once agree on one token, and
// it stays the same afterwards.
func testDomainToken(t *testing.T, s libra.Store) {
	mustProject(t, s, "shop", "acme")
	mustProject(t, s, "blog", "acme")
	tokens := make([]string, 8)
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := s.DomainToken(ctx, "shop")
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
	if again, err := s.DomainToken(ctx, "shop"); err != nil || again != tokens[0] {
		t.Fatalf("token changed to %q (%v)", again, err)
	}
	if other, err := s.DomainToken(ctx, "blog"); err != nil || other == tokens[0] {
		t.Fatalf("blog's token %q (%v), shop's %q", other, err, tokens[0])
	}
	_, err := s.DomainToken(ctx, "nope")
	wantCode(t, "token of an unknown project", err, libra.CodeProjectNotFound)
}

func testDomainChecks(t *testing.T, s libra.Store) {
	mustProject(t, s, "shop", "acme")
	if _, err := s.AddDomain(ctx, "shop", "www.shop.test"); err != nil {
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
		d, err := s.RecordDomainCheck(ctx, "shop", "www.shop.test", st.check)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if (d.VerifiedAt != nil) != st.verified || d.CheckError != st.errText || d.CheckedAt == nil {
			t.Fatalf("%s: got %+v", st.name, d)
		}
		org, err := s.VerifiedDomainOrg(ctx, "www.shop.test")
		if err != nil || (org == "acme") != st.verified {
			t.Fatalf("%s: VerifiedDomainOrg = %q, %v", st.name, org, err)
		}
		if d.VerifiedAt != nil && firstVerified == nil {
			firstVerified = d.VerifiedAt
		} else if d.VerifiedAt != nil && !d.VerifiedAt.Equal(*firstVerified) {
			t.Fatalf("%s: verifiedAt moved from %v to %v", st.name, firstVerified, d.VerifiedAt)
		}
	}
	_, err := s.RecordDomainCheck(ctx, "other", "www.shop.test", missing)
	wantCode(t, "check of another project's domain", err, libra.CodeNotFound)
	if org, err := s.VerifiedDomainOrg(ctx, "unknown.test"); err != nil || org != "" {
		t.Fatalf("org of an unknown domain: %q, %v", org, err)
	}
}

func testPendingDomains(t *testing.T, s libra.Store) {
	mustProject(t, s, "shown", "acme")
	mustProject(t, s, "hidden", "acme")
	for _, a := range [][2]string{{"shown", "a.example.test"}, {"shown", "b.example.test"}, {"shown", "c.example.test"}, {"hidden", "h.example.test"}} {
		if _, err := s.AddDomain(ctx, a[0], a[1]); err != nil {
			t.Fatal(err)
		}
	}
	token, err := s.DomainToken(ctx, "shown")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordDomainCheck(ctx, "shown", "c.example.test", libra.DomainCheck{Verified: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordDomainCheck(ctx, "shown", "b.example.test", libra.DomainCheck{Reason: "timeout"}); err != nil {
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
		got, err := s.PendingDomains(ctx, tt.attachedAfter, tt.checkedBefore, tt.limit)
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
