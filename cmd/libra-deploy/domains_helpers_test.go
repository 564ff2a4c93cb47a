package main_test

import (
	"database/sql"
	"net/url"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/dnstest"
)

// Custom domains are served only once verified by a DNS TXT record: tests
// that attach one run a DNS server on 127.0.0.1, point the binary at it with
// DNS_RESOLVER, and verify each domain through the API like a user would.

// startWithDNS starts a server whose DNS_RESOLVER is a fresh test DNS server.
func startWithDNS(t *testing.T, env ...string) (*server, *dnstest.Server) {
	t.Helper()
	dns := dnstest.Start(t)
	return startServer(t, append([]string{"DNS_RESOLVER=" + dns.Addr}, env...)...), dns
}

// domainToken returns a project's verification token, from the list.
func (s *server) domainToken(tok, project string) string {
	s.t.Helper()
	r := s.do("GET", "/projects/"+project+"/domains", nil, bearer(tok)...)
	token := r.str("verificationToken")
	if r.status != 200 || token == "" {
		s.t.Fatalf("GET /projects/%s/domains: %d %s", project, r.status, r.body)
	}
	return token
}

// verifyDomain publishes the project's token for domain in dns and asks
// the API to verify it, which must succeed.
func (s *server) verifyDomain(dns *dnstest.Server, tok, project, domain string) response {
	s.t.Helper()
	dns.SetTXT("_libra-deploy."+domain, []string{s.domainToken(tok, project)})
	r := s.do("POST", "/projects/"+project+"/domains/"+url.PathEscape(domain)+"/verify", nil, bearer(tok)...)
	if r.status != 200 || r.json["verified"] != true || r.str("status") != "verified" {
		s.t.Fatalf("verify %s: %d %s", domain, r.status, r.body)
	}
	return r
}

// execSQL runs a statement on the server's database, as an operator (or an
// older version) could have.
func execSQL(t *testing.T, s *server, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+s.dataDir+"/libra.db?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// markVerified sets a domain verified behind the API's back. A schema from
// before verification existed has nothing to set: every domain served then.
func markVerified(t *testing.T, s *server, domain string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+s.dataDir+"/libra.db?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE domains SET verified_at = 0 WHERE domain = ?`, domain); err != nil {
		t.Logf("no verification state to set (%v): the schema predates it", err)
	}
}
