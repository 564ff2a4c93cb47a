package storetest

import (
	"errors"
	"strings"
	"sync"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

func testPing(t *testing.T, s libra.Store) {
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func testTokens(t *testing.T, s libra.Store) {
	created := libra.Now()
	if err := s.CreateToken(ctx, libra.Token{Hash: "h1", OrgID: "o", UserID: "u", CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	tok, err := s.TokenByHash(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if tok.OrgID != "o" || tok.UserID != "u" || !sameTime(tok.CreatedAt, created) || tok.Admin {
		t.Fatalf("token %+v", tok)
	}
	if err := s.CreateToken(ctx, libra.Token{Hash: "h-admin", OrgID: "o", UserID: "ops", CreatedAt: created, Admin: true}); err != nil {
		t.Fatal(err)
	}
	if adm, err := s.TokenByHash(ctx, "h-admin"); err != nil || !adm.Admin || adm.UserID != "ops" {
		t.Fatalf("admin token: %+v, %v", adm, err)
	}
	if _, err := s.TokenByHash(ctx, "nope"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("unknown token: %v, want ErrNotFound", err)
	}
	if err := s.CreateToken(ctx, libra.Token{Hash: "h1", OrgID: "other", UserID: "u", CreatedAt: created}); err == nil {
		t.Fatal("a second token with the same hash was accepted")
	}
}

func testProjects(t *testing.T, s libra.Store) {
	mustProject(t, s, "Shop", "o")
	tests := []struct{ id, why string }{
		{"Shop", "same id"},
		{"shop", "same host name"},
	}
	for _, tt := range tests {
		err := s.CreateProject(ctx, libra.Project{ID: tt.id, OrgID: "o2", Name: "x", CreatedAt: libra.Now()})
		wantCode(t, tt.why, err, libra.CodeProjectExists)
	}
	p, err := s.Project(ctx, "Shop")
	if err != nil || p.OrgID != "o" || p.Name != "Shop" || p.Current != "" || p.CreatedAt.IsZero() {
		t.Fatalf("project %+v, %v", p, err)
	}
	if _, err := s.Project(ctx, "nope"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("unknown project: %v", err)
	}
	// An id that is not a host label has no alias, and two of them do
	// not collide on a NULL host.
	mustProject(t, s, "has space", "o")
	mustProject(t, s, "has_underscore!", "o")
}

// ListProjects lists one org's projects, by id in byte order, whether or not
// they have deployments.
func testListProjects(t *testing.T, s libra.Store) {
	for _, p := range [][2]string{{"zeta", "o1"}, {"Alpha", "o1"}, {"other", "o2"}, {"beta", "o1"}, {"_under", "o1"}} {
		mustProject(t, s, p[0], p[1])
	}
	d := mustDeploy(t, s, "beta", "o1")
	if err := s.Publish(ctx, d.ID, "sha256:m", "http://x/"); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListProjects(ctx, "o1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.ID)
		if want := map[string]string{"beta": d.ID}[p.ID]; p.Current != want || p.OrgID != "o1" || p.CreatedAt.IsZero() {
			t.Errorf("project %+v, want current %q", p, want)
		}
	}
	// Byte order: upper case before "_" before lower case.
	if strings.Join(names, ",") != "Alpha,_under,beta,zeta" {
		t.Fatalf("o1 projects %v, want Alpha,_under,beta,zeta", names)
	}
	none, err := s.ListProjects(ctx, "nobody")
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("org without projects: %#v, %v; want an empty slice", none, err)
	}
}

func testQuota(t *testing.T, s libra.Store) {
	steps := []struct {
		set  *int
		want int
	}{
		{nil, -1},
		{ptr(5), 5},
		{ptr(0), 0},
		{ptr(-1), -1},
	}
	for _, st := range steps {
		if st.set != nil {
			if err := s.SetQuota(ctx, "o", *st.set); err != nil {
				t.Fatal(err)
			}
		}
		q, err := s.Quota(ctx, "o", month)
		if err != nil || q.Limit != st.want || q.Used != 0 || q.OrgID != "o" || q.Month != month {
			t.Fatalf("quota %+v, %v; want limit %d", q, err, st.want)
		}
	}
	// A limit of 0 refuses the very first deployment.
	mustProject(t, s, "p", "o")
	if err := s.SetQuota(ctx, "o", 0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "deployment under a limit of 0", s.CreateDeployment(ctx, newDeployment("p", "o")), libra.CodeQuotaExceeded)
}

func ptr(n int) *int { return &n }

func testQuotaChargeAndRefund(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	if err := s.SetQuota(ctx, "o", 2); err != nil {
		t.Fatal(err)
	}
	var ds []*libra.Deployment
	for i := range 3 {
		d := newDeployment("p", "o")
		err := s.CreateDeployment(ctx, d)
		if i < 2 && err != nil {
			t.Fatalf("deployment %d: %v", i, err)
		}
		if i == 2 {
			wantCode(t, "third deployment", err, libra.CodeQuotaExceeded)
		}
		ds = append(ds, d)
	}
	if _, err := s.Deployment(ctx, ds[2].ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("refused deployment was written: %v", err)
	}
	// Refunding twice gives back one.
	for range 2 {
		if err := s.RefundQuota(ctx, ds[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	q, err := s.Quota(ctx, "o", month)
	if err != nil || q.Used != 1 || q.Limit != 2 {
		t.Fatalf("quota %+v, %v; want 1 used of 2", q, err)
	}
	if d, err := s.Deployment(ctx, ds[0].ID); err != nil || !d.QuotaRefunded {
		t.Fatalf("refunded deployment %+v, %v", d, err)
	}
	// Other orgs and months are not charged.
	if q, err := s.Quota(ctx, "o", "2026-12"); err != nil || q.Used != 0 {
		t.Fatalf("next month %+v, %v", q, err)
	}
}

// 50 requests at once against a limit of 20: exactly 20 accepted, and the
// 30 refused wrote nothing.
func testQuotaUnderConcurrency(t *testing.T, s libra.Store) {
	const limit, tries = 20, 50
	mustProject(t, s, "p", "o")
	if err := s.SetQuota(ctx, "o", limit); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, tries)
	var wg sync.WaitGroup
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.CreateDeployment(ctx, newDeployment("p", "o"))
		}()
	}
	wg.Wait()
	close(errs)
	accepted, refused := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			accepted++
		case libra.ErrorCode(err) == libra.CodeQuotaExceeded:
			refused++
		default:
			t.Fatal(err)
		}
	}
	if accepted != limit || refused != tries-limit {
		t.Fatalf("%d accepted, %d refused; want %d and %d", accepted, refused, limit, tries-limit)
	}
	q, err := s.Quota(ctx, "o", month)
	if err != nil || q.Used != limit {
		t.Fatalf("quota %+v, %v; want %d used", q, err, limit)
	}
	page, err := s.ListDeployments(ctx, "p", "", 100)
	if err != nil || page.Total != limit || len(page.Deployments) != limit {
		t.Fatalf("%d deployments stored (%v), want %d", page.Total, err, limit)
	}
	t.Logf("quota under concurrency: %d of %d accepted against a limit of %d", accepted, tries, limit)
}
