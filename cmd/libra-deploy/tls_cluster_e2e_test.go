package main_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/dnstest"
	"github.com/libra-deploy/libra-deploy/internal/pebbletest"
	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

// HTTPS in cluster mode, end to end: two real `serve` nodes on one
// PostgreSQL, each with its own data directory, and Pebble as the CA. The
// CA validates every HTTP-01 challenge at node 2's plain port, so an order
// node 1 places is only validated if node 2 answers a challenge it did not
// start (certmagic's distributed solving, through our storage). Then: a
// certificate obtained through node 1 is served by node 2 without a second
// order, and both nodes asked at once for one new domain place one order.
func TestHTTPSClusterSharesCertificates(t *testing.T) {
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	dbURL := pgtest.Database(t, pgTemplate)
	acme := pebbletest.Listen(t)
	acmeLog := &lockedBuffer{}
	dns := dnstest.Start(t)
	env := append(noLimit, "DNS_RESOLVER="+dns.Addr, "POSTGRES_URL="+dbURL, "HTTPS_ADDR=127.0.0.1:0",
		"ACME_DIRECTORY="+acme.DirectoryURL, "ACME_CA_ROOT="+acme.CAFile, "ACME_EMAIL=ops@libra.test")
	node1, node2 := startServer(t, env...), startServer(t, env...)
	https1, https2 := httpsPort(t, node1), httpsPort(t, node2)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Pebble log:\n%s", tail(acmeLog.String(), 10000))
			t.Logf("node 1 log:\n%s", tail(node1.logs.String(), 10000))
			t.Logf("node 2 log:\n%s", tail(node2.logs.String(), 10000))
		}
	})
	plain2, _ := strconv.Atoi(node2.port)
	acme.StartCA(t, pebbletest.Options{HTTPPort: plain2, TLSPort: https2, Log: acmeLog, Challenges: []string{"http-01"}})

	tok := pgAdmin(t, node1, dbURL, "token", "create", "--org", "acme", "--user", "user-acme")
	pgAdmin(t, node1, dbURL, "project", "create", "--org", "acme", "--id", "shop")
	for _, d := range []string{"shop.example.com", "both.example.com", "held.example.com"} {
		wantCode(t, node1.do("POST", "/projects/shop/domains", map[string]any{"domain": d}, bearer(tok)...), 201, "")
		node1.verifyDomain(dns, tok, "shop", d)
	}

	orderThroughOtherNode(t, node1, node2, https1, https2, acme, deadline)

	leaves := bothAtOnce(t, "both.example.com", []int{https1, https2}, acme.Roots, deadline)
	if leaves[0].SerialNumber.Cmp(leaves[1].SerialNumber) != 0 {
		t.Errorf("the nodes served serials %v and %v for both.example.com: want one certificate", leaves[0].SerialNumber, leaves[1].SerialNumber)
	}
	if n := acme.OrdersFor("both.example.com"); n != 1 {
		t.Errorf("orders for both.example.com, asked of both nodes at once = %d, want 1", n)
	}
	orderAfterDeadHolder(t, dbURL, "held.example.com", https2, acme, deadline)
	checkCertRows(t, dbURL, node1, node2)
	for i, n := range []*server{node1, node2} {
		rss, fds := processFigures(t, n.cmd.Process.Pid)
		t.Logf("node %d after issuance: RSS %.1f MiB, %d open fds", i+1, rss, fds)
		// Loose bounds: a leak of connections or renewer goroutines
		// holding buffers would show as hundreds more.
		if rss > 300 || fds > 200 {
			t.Errorf("node %d: RSS %.1f MiB, %d fds; want under 300 MiB and 200 fds", i+1, rss, fds)
		}
	}
	t.Logf("orders placed: %d for 3 domains over 2 nodes; test took %v", acme.Orders(), time.Since(start).Round(time.Millisecond))
}

// httpsPort waits for the node's "https serving" line, which must say that
// certificates live in PostgreSQL, and returns the port.
func httpsPort(t *testing.T, s *server) int {
	t.Helper()
	var m []string
	if !waitLogs(s, 5*time.Second, func(logs string) bool {
		m = httpsServing.FindStringSubmatch(logs)
		return m != nil
	}) {
		t.Fatalf("no https serving line in the log:\n%s", s.logs.String())
	}
	if !hasLogLine(`"msg":"https serving"`, `"cert_storage":"postgres"`)(s.logs.String()) {
		t.Errorf("https serving line does not say cert_storage postgres:\n%s", s.logs.String())
	}
	port, _ := strconv.Atoi(m[1])
	return port
}

// bothAtOnce does a handshake for name with every port at the same time
// and returns the certificates presented, in port order.
func bothAtOnce(t *testing.T, name string, ports []int, roots *x509.CertPool, deadline time.Time) []*x509.Certificate {
	t.Helper()
	leaves := make([]*x509.Certificate, len(ports))
	errs := make([]error, len(ports))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, port := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leaves[i], errs[i] = tlsHandshake("127.0.0.1:"+strconv.Itoa(port), name, roots, deadline)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("handshake for %s with node %d: %v", name, i+1, err)
		}
	}
	t.Logf("%s asked of %d nodes at once: both handshakes done in %v", name, len(ports), time.Since(t0).Round(time.Millisecond))
	return leaves
}

// checkCertRows: the certificates and keys are rows in PostgreSQL, no lock
// is left held, and no node wrote certificates to its data directory.
func checkCertRows(t *testing.T, dbURL string, nodes ...*server) {
	t.Helper()
	var certs, keys, locks int
	err := pgQueryRow(t, dbURL, `SELECT count(*) FILTER (WHERE key LIKE 'certificates/%.crt'), count(*) FILTER (WHERE key LIKE 'certificates/%.key'),
		(SELECT count(*) FROM certmagic_locks) FROM certmagic_data`).Scan(&certs, &keys, &locks)
	if err != nil {
		t.Fatal(err)
	}
	if certs != 3 || keys != 3 {
		t.Errorf("certificate rows: %d certificates and %d keys, want 3 and 3", certs, keys)
	}
	// A lock row outlives its Unlock only if a holder died; none did.
	if locks != 0 {
		t.Errorf("%d certificate locks left held", locks)
	}
	for i, s := range nodes {
		if _, err := os.Stat(filepath.Join(s.dataDir, "certs")); err == nil {
			t.Errorf("node %d has a certs directory in its data directory", i+1)
		}
	}
}

// orderAfterDeadHolder: a node that died (or stopped) while ordering name
// left certmagic's lock for it, valid for 3 more seconds on the database's
// clock. A handshake for name waits for that lock to go stale, takes it
// over, and places the one order.
func orderAfterDeadHolder(t *testing.T, dbURL, name string, port int, acme *pebbletest.Server, deadline time.Time) {
	t.Helper()
	err := pgQueryRow(t, dbURL, `INSERT INTO certmagic_locks (name, owner, expires_at)
		VALUES ($1, 'a node that died', now() + interval '3 seconds') RETURNING 1`, "issue_cert_"+name).Scan(new(int))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := tlsHandshake("127.0.0.1:"+strconv.Itoa(port), name, acme.Roots, deadline); err != nil {
		t.Fatalf("handshake for %s, whose lock a dead node held: %v", name, err)
	}
	waited := time.Since(t0)
	t.Logf("%s: lock left by a dead node (valid 3s more) taken over, certificate served after %v", name, waited.Round(time.Millisecond))
	// The lock was valid for 3s: a handshake done well before that did
	// not wait for it.
	if waited < 2*time.Second {
		t.Errorf("the handshake took %v: it did not wait for the dead node's lock to expire", waited)
	}
	if n := acme.OrdersFor(name); n != 1 {
		t.Errorf("orders for %s = %d, want 1", name, n)
	}
}

// orderThroughOtherNode: node 1 orders a certificate for shop.example.com
// and the CA asks node 2 (the only node it validates at), which answers
// node 1's challenge from storage; then node 2 serves the same
// certificate, from the database, with no order of its own.
func orderThroughOtherNode(t *testing.T, node1, node2 *server, https1, https2 int, acme *pebbletest.Server, deadline time.Time) {
	t.Helper()
	t0 := time.Now()
	leaf1, err := tlsHandshake("127.0.0.1:"+strconv.Itoa(https1), "shop.example.com", acme.Roots, deadline)
	if err != nil {
		t.Fatalf("handshake with node 1: %v", err)
	}
	t.Logf("node 1: first handshake, with issuance validated through node 2: %v", time.Since(t0).Round(time.Millisecond))
	if !waitLogs(node2, 2*time.Second, hasLogLine(`"msg":"served key authentication"`, `"identifier":"shop.example.com"`, `"distributed":true`)) {
		t.Error("node 2 did not answer node 1's HTTP-01 challenge from the shared storage")
	}
	if !waitLogs(node1, 2*time.Second, hasLogLine(`"msg":"certificate obtained"`, `"domain":"shop.example.com"`)) {
		t.Error(`no "certificate obtained" line for shop.example.com in node 1's log`)
	}

	// Node 2 serves the same certificate, from the database, without an
	// order of its own.
	leaf2, err := tlsHandshake("127.0.0.1:"+strconv.Itoa(https2), "shop.example.com", acme.Roots, deadline)
	if err != nil {
		t.Fatalf("handshake with node 2: %v", err)
	}
	if leaf2.SerialNumber.Cmp(leaf1.SerialNumber) != 0 {
		t.Errorf("node 2 served serial %v, node 1 %v: want one certificate", leaf2.SerialNumber, leaf1.SerialNumber)
	}
	if n := acme.OrdersFor("shop.example.com"); n != 1 {
		t.Errorf("orders for shop.example.com = %d, want 1", n)
	}
}
