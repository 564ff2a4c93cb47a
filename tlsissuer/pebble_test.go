package tlsissuer

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// pebble is Let's Encrypt's test ACME server, run in the test process from
// its own packages, wired like its command does. Its validation authority
// does real HTTP-01 and TLS-ALPN-01 requests, to the ports it is given, at
// the addresses the test's DNS server returns.
type pebble struct {
	directory string         // ACME directory URL
	trust     *x509.CertPool // for Pebble's own HTTPS (httptest's certificate)
	trustPEM  []byte         // the same, as PEM
	issuing   *x509.CertPool // Pebble's issuing root, from its management API

	mu       sync.Mutex
	requests int        // every ACME request
	orders   [][]string // identifiers of every new-order request
}

// startPebble starts Pebble validating challenges on httpPort and tlsPort of
// whatever dnsAddr resolves names to.
func startPebble(t *testing.T, httpPort, tlsPort int, dnsAddr string, logs io.Writer) *pebble {
	t.Helper()
	// Pebble sleeps up to 5 s before each validation and rejects 5% of
	// nonces on purpose, to shake out clients; neither is what is tested.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")

	logger := log.New(logs, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test profile"},
	})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	p := &pebble{}
	acmeSrv := httptest.NewTLSServer(p.record(front.Handler()))
	t.Cleanup(acmeSrv.Close)
	mgmt := httptest.NewTLSServer(front.ManagementHandler())
	t.Cleanup(mgmt.Close)

	p.directory = acmeSrv.URL + wfe.DirectoryPath
	p.trust = x509.NewCertPool()
	p.trust.AddCert(acmeSrv.Certificate())
	p.trustPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: acmeSrv.Certificate().Raw})

	resp, err := mgmt.Client().Get(mgmt.URL + wfe.RootCertPath + "0")
	if err != nil {
		t.Fatalf("fetch Pebble's root: %v", err)
	}
	defer resp.Body.Close()
	rootPEM, _ := io.ReadAll(resp.Body)
	block, _ := pem.Decode(rootPEM)
	if resp.StatusCode != http.StatusOK || block == nil {
		t.Fatalf("fetch Pebble's root: status %d, %q", resp.StatusCode, rootPEM)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse Pebble's root: %v", err)
	}
	p.issuing = x509.NewCertPool()
	p.issuing.AddCert(root)
	return p
}

// record counts requests and notes the identifiers of each new order, read
// from the JWS payload, so that tests can tell what the CA was asked for.
func (p *pebble) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests++
		p.mu.Unlock()
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var jws struct{ Payload string }
			var order struct {
				Identifiers []struct{ Value string }
			}
			_ = json.Unmarshal(body, &jws)
			payload, _ := base64.RawURLEncoding.DecodeString(jws.Payload)
			_ = json.Unmarshal(payload, &order)
			var names []string
			for _, id := range order.Identifiers {
				names = append(names, id.Value)
			}
			p.mu.Lock()
			p.orders = append(p.orders, names)
			p.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (p *pebble) requestCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// ordersFor returns how many orders named domain.
func (p *pebble) ordersFor(domain string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, names := range p.orders {
		for _, name := range names {
			if name == domain {
				n++
			}
		}
	}
	return n
}

// startDNS serves, over TCP (which Pebble's validation uses), 127.0.0.1 as
// the address of every name except those with the label "nowhere", which
// have no address: the test's stand-in for the public DNS.
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			name := strings.ToLower(q.Name)
			if q.Qtype != dns.TypeA || strings.HasPrefix(name, "nowhere.") {
				continue
			}
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
				A:   net.IPv4(127, 0, 0, 1),
			})
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}
