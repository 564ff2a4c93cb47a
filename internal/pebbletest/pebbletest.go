// Package pebbletest runs Pebble, Let's Encrypt's test ACME server, inside
// a test process, with a DNS server that sends every name to 127.0.0.1.
//
// It is for tests only: import it from _test.go files alone, so that no
// binary links Pebble.
package pebbletest

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Options says how the CA validates challenges.
type Options struct {
	// HTTPPort and TLSPort are where the validation authority sends
	// HTTP-01 and TLS-ALPN-01 requests, at the address DNS gives the name.
	HTTPPort, TLSPort int
	// DNS is the host:port of the DNS server (over TCP) Pebble resolves
	// names with; "" starts one with StartDNS.
	DNS string
	// Log, if not nil, gets Pebble's log. Pebble writes from its own
	// goroutines: a test that reads Log while Pebble runs must lock it.
	Log io.Writer
	// Challenges, if not empty, are the only challenge types the CA
	// offers (it removes the others from the authorizations it returns,
	// as a CA may); empty offers all of Pebble's.
	Challenges []string
}

// Server is one Pebble: an ACME endpoint over HTTPS and the CA behind it.
type Server struct {
	DirectoryURL string         // the ACME directory URL (ACME_DIRECTORY)
	Trust        *x509.CertPool // trusts the ACME endpoint's own certificate
	TrustPEM     []byte         // that certificate, PEM
	CAFile       string         // a file holding TrustPEM (ACME_CA_ROOT)
	Roots        *x509.CertPool // Pebble's issuing root; nil until the CA starts

	mu       sync.Mutex
	front    http.Handler // the CA's ACME handler; nil until it starts
	requests int          // every ACME request
	orders   [][]string   // identifiers of every new-order request
}

// Start starts Pebble, its ACME endpoint and the CA behind it, for the
// length of the test.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := Listen(t)
	s.StartCA(t, opts)
	return s
}

// Listen starts the ACME endpoint alone, for when its URL is needed before
// the ports the CA must validate on are known. Until StartCA, it answers
// every request with 503 Service Unavailable.
func Listen(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	srv := httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.DirectoryURL = srv.URL + wfe.DirectoryPath
	s.Trust = x509.NewCertPool()
	s.Trust.AddCert(srv.Certificate())
	s.TrustPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	s.CAFile = filepath.Join(t.TempDir(), "acme-ca.pem")
	if err := os.WriteFile(s.CAFile, s.TrustPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// StartCA builds the CA behind the endpoint Listen started, wired as
// Pebble's command does, and fetches its issuing root into s.Roots.
func (s *Server) StartCA(t testing.TB, opts Options) {
	t.Helper()
	// Pebble sleeps up to 5 s before each validation and rejects 5% of
	// nonces on purpose, to shake out clients; neither is what is tested.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	if opts.DNS == "" {
		opts.DNS = StartDNS(t)
	}

	if opts.Log == nil {
		opts.Log = io.Discard
	}
	logger := log.New(opts.Log, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test profile"},
	})
	validator := va.New(logger, opts.HTTPPort, opts.TLSPort, false, opts.DNS, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	mgmt := httptest.NewTLSServer(front.ManagementHandler())
	t.Cleanup(mgmt.Close)
	s.Roots = fetchRoot(t, mgmt)

	var h http.Handler = front.Handler()
	if len(opts.Challenges) > 0 {
		h = onlyChallenges(opts.Challenges, h)
	}
	s.mu.Lock()
	s.front = h
	s.mu.Unlock()
}

// fetchRoot returns a pool of Pebble's issuing root, from its management
// API.
func fetchRoot(t testing.TB, mgmt *httptest.Server) *x509.CertPool {
	t.Helper()
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
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool
}

// serve counts requests and notes the identifiers of each new order, read
// from the JWS payload, so that tests can tell what the CA was asked for.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	front := s.front
	s.mu.Unlock()
	if front == nil {
		http.Error(w, "CA not started", http.StatusServiceUnavailable)
		return
	}
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
		s.mu.Lock()
		s.orders = append(s.orders, names)
		s.mu.Unlock()
	}
	front.ServeHTTP(w, r)
}

// onlyChallenges removes every challenge whose type is not in types from
// the authorizations next returns. Clients pick among the offered types at
// random; this makes the one a test is about the only choice.
func onlyChallenges(types []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/authZ/") {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var authz map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(body, &authz) == nil {
			if chals, ok := authz["challenges"].([]any); ok {
				authz["challenges"] = slices.DeleteFunc(chals, func(c any) bool {
					m, _ := c.(map[string]any)
					typ, _ := m["type"].(string)
					return !slices.Contains(types, typ)
				})
				if b, err := json.Marshal(authz); err == nil {
					body = b
				}
			}
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

// Requests returns how many requests the ACME endpoint has had.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Orders returns how many new-order requests the CA has had.
func (s *Server) Orders() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.orders)
}

// OrdersFor returns how many new-order requests named domain.
func (s *Server) OrdersFor(domain string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, names := range s.orders {
		for _, name := range names {
			if name == domain {
				n++
			}
		}
	}
	return n
}
