package main_test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// Issue 8, finding 4: a custom domain must not take over the API's host
// name, and is served only once its owner proved control of its DNS.

const apiHost = "api.libra.test"

var tokenShape = regexp.MustCompile(`^libra-verify-[0-9a-f]{40}$`)

// isAPI reports whether a response is the API's own GET / answer.
func isAPI(r response) bool { return r.status == 200 && r.str("service") == "libra-deploy" }

func TestDomainReservedNames(t *testing.T) {
	s, _ := startWithDNS(t, append(noLimit, "API_HOSTS=other.libra.test, "+strings.ToUpper(apiHost)+".")...)
	tok := s.setup("evil", "takeover")
	s.deployWait(tok, site("evil", "takeover", map[string]string{"index.html": "not the API"}), "completed")

	for _, name := range []string{apiHost, "API.Libra.Test.", "other.libra.test", "takeover.localhost", "localhost.",
		"x.api.localhost", "127.0.0.1", "[::1]", "::1"} {
		t.Run("attach "+name, func(t *testing.T) {
			r := s.do("POST", "/projects/takeover/domains", map[string]any{"domain": name}, bearer(tok)...)
			wantCode(t, r, 400, "VALIDATION_ERROR")
		})
		t.Run("deploy with customDomain "+name, func(t *testing.T) {
			body := site("evil", "takeover", map[string]string{"index.html": "not the API"})
			body["customDomain"] = name
			wantCode(t, s.deploy(tok, body), 400, "VALIDATION_ERROR")
		})
	}
	if n := countRows(t, s, "SELECT count(*) FROM domains"); n != 0 {
		t.Fatalf("%d domains attached by refused requests", n)
	}
	if n := countRows(t, s, "SELECT count(*) FROM deployments"); n != 1 {
		t.Fatalf("%d deployments, want only the first", n)
	}
	// The API's names answer as the API, in every spelling.
	for _, host := range []string{apiHost, "API.LIBRA.TEST", apiHost + ".", "other.libra.test:" + s.port} {
		r := s.do("GET", "/", nil, "Host", host)
		if !isAPI(r) {
			t.Errorf("GET / with Host %s: %d %.200s", host, r.status, r.body)
		}
	}
}

// A name attached by hand in the database (as by an older version, or a
// race with a configuration change) still cannot take over an API host:
// the routing rule does not depend on what the store holds.
func TestDomainAPIHostAlwaysRoutesToAPI(t *testing.T) {
	s, _ := startWithDNS(t, append(noLimit, "API_HOSTS="+apiHost)...)
	tok := s.setup("evil", "takeover")
	s.deployWait(tok, site("evil", "takeover", map[string]string{"index.html": "not the API"}), "completed")
	execSQL(t, s, `INSERT INTO domains (domain, project_id, created_at) VALUES ('`+apiHost+`', 'takeover', 0)`)
	markVerified(t, s, apiHost)
	if r := s.do("GET", "/", nil, "Host", apiHost); !isAPI(r) {
		t.Fatalf("GET / on an API host a project has in the store: %d %.200s", r.status, r.body)
	}
}

func TestDomainVerification(t *testing.T) {
	s, dns := startWithDNS(t, noLimit...)
	tok := s.setup("acme", "shop")
	s.deployWait(tok, site("acme", "shop", map[string]string{"index.html": "shop"}), "completed")
	const domain = "www.shop.test"
	verifyPath := "/projects/shop/domains/" + domain + "/verify"

	r := s.do("POST", "/projects/shop/domains", map[string]any{"domain": domain}, bearer(tok)...)
	wantCode(t, r, 201, "")
	token := r.str("verificationToken")
	if !tokenShape.MatchString(token) || r.str("status") != "pending" {
		t.Fatalf("added domain: want pending with a token, got %s", r.body)
	}
	rec, _ := r.json["verification"].(map[string]any)
	if rec["type"] != "TXT" || rec["name"] != "_libra-deploy."+domain || rec["value"] != token {
		t.Fatalf("verification record: %v", rec)
	}
	if got := s.domainToken(tok, "shop"); got != token {
		t.Fatalf("list token %q, add token %q", got, token)
	}
	// Another project's token is another token.
	s.admin("project", "create", "--org", "acme", "--id", "blog")
	if other := s.domainToken(tok, "blog"); other == token || !tokenShape.MatchString(other) {
		t.Fatalf("blog's token %q, shop's %q", other, token)
	}
	if r := s.page(domain, "/"); !isAPI(r) {
		t.Fatalf("pending domain: %d %.200s", r.status, r.body)
	}

	for _, tt := range []struct {
		name   string
		txt    [][]string
		reason string
	}{
		{"no record", nil, "no TXT record _libra-deploy." + domain},
		{"wrong token", [][]string{{"libra-verify-" + strings.Repeat("0", 40)}}, "does not hold"},
		{"token of the name itself", nil, "no TXT record"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dns.SetTXT("_libra-deploy."+domain, tt.txt...)
			if tt.name == "token of the name itself" {
				// The token at the domain rather than _libra-deploy.{domain}.
				dns.SetTXT(domain, []string{token})
			}
			r := s.do("POST", verifyPath, nil, bearer(tok)...)
			if r.status != 200 || r.json["verified"] != false || r.str("status") != "pending" ||
				!strings.Contains(r.str("reason"), tt.reason) || r.str("lastCheckedAt") == "" {
				t.Fatalf("verify: %d %s", r.status, r.body)
			}
			if r := s.page(domain, "/"); !isAPI(r) {
				t.Fatalf("unverified domain served: %d %.200s", r.status, r.body)
			}
		})
	}

	// The right token, split into two strings as long TXT values are.
	dns.SetTXT("_libra-deploy."+domain, []string{"unrelated=1"}, []string{token[:20], token[20:]})
	r = s.do("POST", verifyPath, nil, bearer(tok)...)
	if r.status != 200 || r.json["verified"] != true || r.str("status") != "verified" || r.str("verifiedAt") == "" {
		t.Fatalf("verify with the right record: %d %s", r.status, r.body)
	}
	if r := s.page(domain, "/"); r.status != 200 || string(r.body) != "shop" {
		t.Fatalf("verified domain: %d %.200s", r.status, r.body)
	}
	list := s.do("GET", "/projects/shop/domains", nil, bearer(tok)...)
	if !strings.Contains(string(list.body), `"domain":"`+domain+`","status":"verified"`) {
		t.Fatalf("list after verification: %s", list.body)
	}

	// The record removed and verification asked again: pending, not served.
	dns.SetTXT("_libra-deploy." + domain)
	r = s.do("POST", verifyPath, nil, bearer(tok)...)
	if r.json["verified"] != false || r.str("status") != "pending" {
		t.Fatalf("re-verify without the record: %d %s", r.status, r.body)
	}
	if r := s.page(domain, "/"); !isAPI(r) {
		t.Fatalf("domain whose record is gone still served: %d %.200s", r.status, r.body)
	}

	// Errors: an unknown domain of the project, another org.
	wantCode(t, s.do("POST", "/projects/shop/domains/nope.example.test/verify", nil, bearer(tok)...), 404, "NOT_FOUND")
	globex := s.setup("globex", "globex-site")
	wantCode(t, s.do("POST", verifyPath, nil, bearer(globex)...), 403, "FORBIDDEN")
	wantCode(t, s.do("POST", verifyPath, nil), 401, "UNAUTHORIZED")
	t.Logf("DNS queries answered: %d", dns.Queries())
}

// Pending domains are checked in the background: one whose record appears
// is served without another request, and one without a record is asked
// about at most once per interval.
func TestDomainBackgroundVerification(t *testing.T) {
	s, dns := startWithDNS(t, append(noLimit, "DOMAIN_CHECK_INTERVAL=200ms")...)
	tok := s.setup("acme", "shop")
	s.deployWait(tok, site("acme", "shop", map[string]string{"index.html": "shop"}), "completed")
	for _, d := range []string{"www.shop.test", "never.shop.test"} {
		wantCode(t, s.do("POST", "/projects/shop/domains", map[string]any{"domain": d}, bearer(tok)...), 201, "")
	}
	dns.SetTXT("_libra-deploy.www.shop.test", []string{s.domainToken(tok, "shop")})

	start := time.Now()
	for !isSite(s.page("www.shop.test", "/"), "shop") {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the background check did not verify the domain within 15s; log:\n%s", tail(s.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("served %v after its record appeared", time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	elapsed := time.Since(start)
	n := dns.QueriesFor("_libra-deploy.never.shop.test")
	// At most one query per 200ms interval, with a wide margin.
	limit := int(elapsed/(200*time.Millisecond))*2 + 2
	t.Logf("queries for a domain without a record in %v: %d (bound %d)", elapsed.Round(time.Millisecond), n, limit)
	if n == 0 || n > limit {
		t.Errorf("%d queries for the pending domain in %v, want 1..%d", n, elapsed, limit)
	}
	if r := s.page("never.shop.test", "/"); !isAPI(r) {
		t.Errorf("a domain without a record is served: %d %.200s", r.status, r.body)
	}
	list := s.do("GET", "/projects/shop/domains", nil, bearer(tok)...)
	if !strings.Contains(string(list.body), `"lastCheckError":"no TXT record _libra-deploy.never.shop.test exists"`) {
		t.Errorf("the background check's reason is not shown: %s", list.body)
	}
}

// isSite reports whether a response is the site's page.
func isSite(r response, body string) bool { return r.status == 200 && string(r.body) == body }

// A deployment accepted before its customDomain became an API host name is
// refused when it runs: the validate step applies the rule as it is then.
func TestDomainReservedWhileQueued(t *testing.T) {
	s, _ := startWithDNS(t, append(noLimit, "LIBRA_TEST_HOOKS=validate:sleep:30s")...)
	tok := s.setup("acme", "shop")
	body := site("acme", "shop", map[string]string{"index.html": "shop"})
	body["customDomain"] = "late.example.test"
	r := s.deploy(tok, body)
	wantCode(t, r, 202, "")
	id := r.str("deploymentId")
	s.waitFor(id, 10*time.Second, func(r response) bool { return r.str("status") == "in_progress" })
	s.kill()

	var env []string
	for _, e := range s.env {
		if !strings.HasPrefix(e, "LIBRA_TEST_HOOKS=") {
			env = append(env, e)
		}
	}
	s.env = append(env, "API_HOSTS=late.example.test")
	s.start()
	st := s.waitFinal(id, 30*time.Second)
	if st.str("status") != "failed" || !strings.Contains(string(st.body), "reserved") {
		t.Fatalf("deployment with a now-reserved customDomain: %s", st.body)
	}
	if n := countRows(t, s, "SELECT count(*) FROM domains"); n != 0 {
		t.Fatalf("%d domains attached", n)
	}
	if r := s.do("GET", "/", nil, "Host", "late.example.test"); !isAPI(r) {
		t.Fatalf("GET / on the API host: %d %.200s", r.status, r.body)
	}
}
