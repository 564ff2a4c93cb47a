package main_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/pebbletest"
)

// HTTPS with on-demand certificates, end to end: the real binary, pointed at
// a Pebble (Let's Encrypt's test CA) run in the test process, whose
// validation authority makes real HTTP-01 requests to the binary's plain
// listener at the address a test DNS server gives every name (127.0.0.1).

var httpsServing = regexp.MustCompile(`"msg":"https serving","addr":"[^"]*:(\d+)"`)

func TestHTTPSOnDemandCertificates(t *testing.T) {
	start := time.Now()
	// Every network wait below ends by this time, so that the test is
	// bounded whatever goes wrong.
	deadline := start.Add(55 * time.Second)

	// Pebble's ACME endpoint must exist before the service starts (its
	// URL is ACME_DIRECTORY) but its validation authority needs the
	// service's ports: the listener comes first, Pebble behind it after.
	acme := pebbletest.Listen(t)
	acmeLog := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Pebble log:\n%s", tail(acmeLog.String(), 20000))
		}
	})

	s, dns := startWithDNS(t, append(noLimit,
		"API_HOSTS=api.example.com",
		"HTTPS_ADDR=127.0.0.1:0",
		"ACME_DIRECTORY="+acme.DirectoryURL,
		"ACME_CA_ROOT="+acme.CAFile,
		"ACME_EMAIL=ops@libra.test",
	)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", tail(s.logs.String(), 20000))
		}
	})
	// The log (stderr) is copied apart from the line startServer waits
	// for (stdout): it may lag behind.
	var m []string
	if !waitLogs(s, 5*time.Second, func(logs string) bool {
		m = httpsServing.FindStringSubmatch(logs)
		return m != nil
	}) {
		t.Fatalf("no https serving line in the log:\n%s", s.logs.String())
	}
	httpsAddr := "127.0.0.1:" + m[1]
	plainPort, _ := strconv.Atoi(s.port)
	httpsPort, _ := strconv.Atoi(m[1])
	// The CA offers HTTP-01 alone, as a CA may: the client picks among
	// the offered types at random, and HTTP-01 through the plain listener
	// is what is tested. Names resolve to 127.0.0.1 (pebbletest.StartDNS).
	acme.StartCA(t, pebbletest.Options{
		HTTPPort:   plainPort,
		TLSPort:    httpsPort,
		Log:        acmeLog,
		Challenges: []string{"http-01"},
	})

	tok := s.setup("acme", "shop")

	// A name no project has: refused in the handshake, and the CA hears
	// nothing at all.
	t0 := time.Now()
	if _, err := tlsHandshake(httpsAddr, "unknown.example.org", acme.Roots, deadline); err == nil {
		t.Fatal("handshake for an unknown domain succeeded")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("refusing an unknown domain took %v", d)
	}
	// Not yet attached: the same as unknown. The decision is asked of
	// the database at each handshake, so attaching it later is enough.
	if _, err := tlsHandshake(httpsAddr, "shop.example.com", acme.Roots, deadline); err == nil {
		t.Fatal("handshake for a domain not attached yet succeeded")
	}
	if n := acme.Requests(); n != 0 {
		t.Fatalf("the ACME server got %d requests before any domain was attached, want 0", n)
	}

	// customDomain attaches the domain when the deployment completes,
	// pending: until its DNS record is verified, no certificate either.
	body := staticSite("acme", "shop", 1)
	body["customDomain"] = "shop.example.com"
	s.deployWait(tok, body, "completed")
	if _, err := tlsHandshake(httpsAddr, "shop.example.com", acme.Roots, deadline); err == nil {
		t.Fatal("handshake for a pending domain succeeded")
	}
	// An API host name, even one a project has in the store (attached by
	// hand: the API refuses it), is never worth a certificate.
	execSQL(t, s, `INSERT INTO domains (domain, project_id, created_at, verified_at) VALUES ('api.example.com', 'shop', 0, 0)`)
	if _, err := tlsHandshake(httpsAddr, "api.example.com", acme.Roots, deadline); err == nil {
		t.Fatal("handshake for an API host name succeeded")
	}
	if n := acme.Requests(); n != 0 {
		t.Fatalf("the ACME server got %d requests for pending and reserved names, want 0", n)
	}
	s.verifyDomain(dns, tok, "shop", "shop.example.com")

	// The first handshake obtains the certificate from Pebble, over
	// HTTP-01 answered by the plain listener.
	t0 = time.Now()
	leaf, err := tlsHandshake(httpsAddr, "shop.example.com", acme.Roots, deadline)
	if err != nil {
		t.Fatalf("handshake for an attached domain: %v", err)
	}
	t.Logf("first handshake, with issuance: %v", time.Since(t0).Round(time.Millisecond))
	if !slices.Equal(leaf.DNSNames, []string{"shop.example.com"}) {
		t.Errorf("certificate names = %v, want [shop.example.com]", leaf.DNSNames)
	}
	if err := leaf.VerifyHostname("shop.example.com"); err != nil {
		t.Errorf("certificate: %v", err)
	}
	if n := acme.OrdersFor("shop.example.com"); n != 1 {
		t.Errorf("orders for shop.example.com = %d, want 1", n)
	}
	wantFetch := "Attempting to validate w/ HTTP: http://shop.example.com:" + s.port + "/.well-known/acme-challenge/"
	if !strings.Contains(acmeLog.String(), wantFetch) {
		t.Errorf("Pebble did not validate over HTTP-01 at the plain port (%q)", wantFetch)
	}
	if !waitLogs(s, 2*time.Second, hasLogLine(`"msg":"served key authentication"`, `"challenge":"http-01"`, `"identifier":"shop.example.com"`)) {
		t.Error("the service did not log answering the HTTP-01 challenge")
	}
	if !waitLogs(s, 2*time.Second, hasLogLine(`"msg":"certificate obtained"`, `"domain":"shop.example.com"`)) {
		t.Error(`no "certificate obtained" log line for shop.example.com`)
	}

	// The site itself, over HTTPS, with the certificate verified against
	// Pebble's issuing root.
	page, err := httpsGet(httpsAddr, "https://shop.example.com:"+m[1]+"/", acme.Roots, deadline)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<!doctype html><h1>hello shop</h1>"; page != want {
		t.Errorf("HTTPS page = %q, want %q", page, want)
	}

	// Still nothing for the unknown domain, and no order was ever made
	// for it.
	if _, err := tlsHandshake(httpsAddr, "unknown.example.org", acme.Roots, deadline); err == nil {
		t.Error("second handshake for an unknown domain succeeded")
	}
	if n := acme.OrdersFor("unknown.example.org"); n != 0 {
		t.Errorf("orders for unknown.example.org = %d, want 0", n)
	}
	if n := acme.Orders(); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	if n := acme.OrdersFor("api.example.com"); n != 0 {
		t.Errorf("orders for api.example.com = %d, want 0", n)
	}

	// The certificate and its key are stored under {data dir}/certs,
	// private; the stored certificate is the one served.
	certs := filepath.Join(s.dataDir, "certs")
	found := map[string]string{}
	err = filepath.WalkDir(certs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), "unknown.example.org") {
			t.Errorf("%s exists", p)
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), "shop.example.com.") {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %v", p, perm)
			}
			found[d.Name()] = p
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", certs, err)
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"shop.example.com.crt", "shop.example.com.json", "shop.example.com.key"}) {
		t.Errorf("certificate files under %s = %v", certs, names)
	}
	if p, ok := found["shop.example.com.crt"]; ok {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			t.Fatalf("%s holds no PEM", p)
		}
		stored, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("parse %s: %v", p, err)
		}
		if stored.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("stored serial %v, served %v", stored.SerialNumber, leaf.SerialNumber)
		}
	}

	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("test took %v, want under 60s", d)
	}
	t.Logf("test took %v", time.Since(start).Round(time.Millisecond))
}

// waitLogs polls the server's log until cond holds, for up to timeout.
func waitLogs(s *server, timeout time.Duration, cond func(logs string) bool) bool {
	for end := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		if cond(s.logs.String()) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// hasLogLine returns a condition on logs: one line contains all of parts.
func hasLogLine(parts ...string) func(logs string) bool {
	return func(logs string) bool {
		for line := range strings.Lines(logs) {
			ok := true
			for _, p := range parts {
				if !strings.Contains(line, p) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
		return false
	}
}

// tlsHandshake does a TLS handshake with SNI name, trusting only roots, and
// returns the certificate the server presented.
func tlsHandshake(addr, name string, roots *x509.CertPool, deadline time.Time) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Deadline: deadline}, "tcp", addr,
		&tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// httpsGet fetches url from the server at addr, whatever the URL's host
// resolves to, trusting only roots.
func httpsGet(addr, url string, roots *x509.CertPool, deadline time.Time) (string, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &httpStatusError{url: url, status: resp.StatusCode, body: string(b)}
	}
	return string(b), nil
}

type httpStatusError struct {
	url    string
	status int
	body   string
}

func (e *httpStatusError) Error() string {
	return "GET " + e.url + ": status " + strconv.Itoa(e.status) + ": " + e.body
}
