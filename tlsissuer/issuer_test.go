package tlsissuer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	libra "github.com/libra-deploy/libra-deploy"
)

// The tests run the service's HTTP and HTTPS front the way the wiring does
// (challenge handler in front of a site on the plain listener, TLSConfig on
// the TLS one) against a real Pebble that validates challenges by real
// requests to those listeners, and check the results with real handshakes.

// rig is one Pebble, its DNS, and the two listeners it validates against.
type rig struct {
	t       *testing.T
	logs    *logBuffer
	pebble  *pebble
	httpLn  net.Listener
	tlsLn   net.Listener
	allowed map[string]bool

	mu         sync.Mutex
	asked      []string         // every name Allowed was asked about
	challenges []challengeHit   // challenge requests at the plain listener
	siteHits   map[string]int   // challenge paths that reached the site
	stops      []func()         // servers to stop
	issuers    map[*Issuer]bool // issuers to close
}

type challengeHit struct {
	host   string
	status int
}

func newRig(t *testing.T, allowed ...string) *rig {
	r := &rig{
		t:        t,
		logs:     newLogBuffer(t),
		httpLn:   listen(t),
		tlsLn:    listen(t),
		allowed:  map[string]bool{},
		siteHits: map[string]int{},
		issuers:  map[*Issuer]bool{},
	}
	for _, d := range allowed {
		r.allowed[d] = true
	}
	r.pebble = startPebble(t, port(r.httpLn), port(r.tlsLn), startDNS(t), r.logs)
	t.Cleanup(func() {
		for _, stop := range r.stops {
			stop()
		}
		for iss := range r.issuers {
			iss.Close()
		}
	})
	return r
}

func (r *rig) allow(_ context.Context, domain string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, domain)
	if !r.allowed[domain] {
		return ErrNotAttached
	}
	return nil
}

func (r *rig) askedAbout(domain string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.asked, domain)
}

// newIssuer returns an Issuer on dir, pointed at the rig's Pebble, for
// listeners on httpPort and tlsPort.
func (r *rig) newIssuer(dir string, httpPort, tlsPort int, edit func(*Config)) *Issuer {
	cfg := Config{
		StorageDir:   dir,
		DirectoryURL: r.pebble.directory,
		Email:        "ops@libra.test",
		RootCAs:      r.pebble.trust,
		Allowed:      r.allow,
		Logger:       slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HTTPPort:     httpPort,
		TLSPort:      tlsPort,
	}
	if edit != nil {
		edit(&cfg)
	}
	iss, err := New(cfg)
	if err != nil {
		r.t.Fatalf("New: %v", err)
	}
	r.issuers[iss] = true
	return iss
}

// serve runs the plain listener (challenge handler, then the site) and the
// TLS listener (the site) for iss. The TLS server's handshake timeout is
// far below the time an issuance takes, as a busy service's would be.
func (r *rig) serve(iss *Issuer, httpLn, tlsLn net.Listener) (stop func()) {
	site := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/.well-known/acme-challenge/") {
			r.mu.Lock()
			r.siteHits[req.Host]++
			r.mu.Unlock()
			http.NotFound(w, req)
			return
		}
		io.WriteString(w, "site "+req.Host)
	})
	plain := &http.Server{
		Handler:           r.recordChallenges(iss.HTTPChallengeHandler(site)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	secure := &http.Server{
		Handler:           site,
		TLSConfig:         iss.TLSConfig(),
		ReadHeaderTimeout: 300 * time.Millisecond,
		ErrorLog:          log.New(r.logs, "https: ", log.Lmicroseconds),
	}
	go plain.Serve(httpLn)
	go secure.ServeTLS(tlsLn, "", "")
	stop = func() {
		plain.Close()
		secure.Close()
	}
	r.stops = append(r.stops, stop)
	return stop
}

func (r *rig) recordChallenges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasPrefix(req.URL.Path, "/.well-known/acme-challenge/") {
			next.ServeHTTP(w, req)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, req)
		r.mu.Lock()
		r.challenges = append(r.challenges, challengeHit{host: req.Host, status: sw.status})
		r.mu.Unlock()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// dialTLS does a TLS handshake with SNI name, trusting only roots, and
// returns the certificate the server presented.
func dialTLS(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func TestOnDemandCertificateOverHTTP01(t *testing.T) {
	start := time.Now()
	r := newRig(t, "shop.example.com")
	dir := t.TempDir()
	httpOnly := func(c *Config) { c.DisableTLSALPN01 = true }
	iss := r.newIssuer(dir, port(r.httpLn), port(r.tlsLn), httpOnly)
	stop := r.serve(iss, r.httpLn, r.tlsLn)
	tlsAddr := r.tlsLn.Addr().String()

	// A name no project has: refused at once, and the CA hears nothing.
	t0 := time.Now()
	if _, err := dialTLS(tlsAddr, "unknown.example.org", r.pebble.issuing); err == nil {
		t.Fatal("handshake for an unknown domain succeeded")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("refusing an unknown domain took %v", d)
	}
	if !r.askedAbout("unknown.example.org") {
		t.Error("Allowed was not asked about unknown.example.org")
	}
	if n := r.pebble.requestCount(); n != 0 {
		t.Errorf("the ACME server got %d requests for an unknown domain, want 0", n)
	}

	// No SNI (a client dialling the IP): no certificate and no question.
	conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Error("handshake without SNI succeeded")
	}
	if r.askedAbout("127.0.0.1") {
		t.Error("Allowed was asked about an IP address")
	}

	// An attached domain: the first handshake obtains a certificate from
	// Pebble, validated over HTTP-01 against the plain listener.
	t0 = time.Now()
	leaf, err := dialTLS(tlsAddr, "shop.example.com", r.pebble.issuing)
	if err != nil {
		t.Fatalf("handshake for an attached domain: %v", err)
	}
	t.Logf("first handshake, with issuance: %v", time.Since(t0).Round(time.Millisecond))
	if !slices.Equal(leaf.DNSNames, []string{"shop.example.com"}) {
		t.Errorf("certificate names = %v, want [shop.example.com]", leaf.DNSNames)
	}
	if n := r.pebble.ordersFor("shop.example.com"); n != 1 {
		t.Errorf("orders for shop.example.com = %d, want 1", n)
	}
	r.mu.Lock()
	answered := 0
	for _, c := range r.challenges {
		if c.status == http.StatusOK && strings.HasPrefix(c.host, "shop.example.com") {
			answered++
		}
	}
	siteHits := len(r.siteHits)
	r.mu.Unlock()
	if answered == 0 {
		t.Error("no HTTP-01 request was answered by the challenge handler")
	}
	if siteHits != 0 {
		t.Errorf("challenge requests reached the site handler: %v", r.siteHits)
	}
	// certmagic's own log lines arrive through the slog logger.
	if !strings.Contains(r.logs.String(), `"msg":"served key authentication"`) {
		t.Error("certmagic's log lines are missing from the slog output")
	}

	// The same handler serves over HTTPS.
	body := get(t, tlsAddr, "https://shop.example.com/", r.pebble.issuing)
	if body != "site shop.example.com" {
		t.Errorf("HTTPS body = %q", body)
	}

	// Still nothing for the unknown domain.
	if _, err := dialTLS(tlsAddr, "unknown.example.org", r.pebble.issuing); err == nil {
		t.Error("second handshake for an unknown domain succeeded")
	}
	if n := r.pebble.ordersFor("unknown.example.org"); n != 0 {
		t.Errorf("orders for unknown.example.org = %d, want 0", n)
	}

	// The certificate and its key are on disk, private.
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "shop.example.com.") {
			info, _ := d.Info()
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %v", p, perm)
			}
			files = append(files, d.Name())
		}
		return nil
	})
	slices.Sort(files)
	if !slices.Equal(files, []string{"shop.example.com.crt", "shop.example.com.json", "shop.example.com.key"}) {
		t.Errorf("certificate files under StorageDir = %v", files)
	}

	// Restart: a new Issuer on the same directory serves the stored
	// certificate without a new order.
	stop()
	iss.Close()
	httpLn2, tlsLn2 := listen(t), listen(t)
	iss2 := r.newIssuer(dir, port(httpLn2), port(tlsLn2), httpOnly)
	r.serve(iss2, httpLn2, tlsLn2)
	again, err := dialTLS(tlsLn2.Addr().String(), "shop.example.com", r.pebble.issuing)
	if err != nil {
		t.Fatalf("handshake after restart: %v", err)
	}
	if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("after restart the serial is %v, want the stored %v", again.SerialNumber, leaf.SerialNumber)
	}
	if n := r.pebble.ordersFor("shop.example.com"); n != 1 {
		t.Errorf("orders for shop.example.com after restart = %d, want still 1", n)
	}
	t.Logf("test took %v", time.Since(start).Round(time.Millisecond))
}

func TestOnDemandCertificateOverTLSALPN01(t *testing.T) {
	r := newRig(t, "alpn.example.com")
	// Trust for the ACME server as the service gets it: a PEM file
	// (ACME_CA_ROOT) added to the system roots.
	caFile := filepath.Join(t.TempDir(), "acme-ca.pem")
	if err := os.WriteFile(caFile, r.pebble.trustPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	roots, err := LoadRootCAs(caFile)
	if err != nil {
		t.Fatalf("LoadRootCAs: %v", err)
	}
	iss := r.newIssuer(t.TempDir(), port(r.httpLn), port(r.tlsLn), func(c *Config) {
		c.DisableHTTP01 = true
		c.RootCAs = roots
	})
	r.serve(iss, r.httpLn, r.tlsLn)

	leaf, err := dialTLS(r.tlsLn.Addr().String(), "alpn.example.com", r.pebble.issuing)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if !slices.Equal(leaf.DNSNames, []string{"alpn.example.com"}) {
		t.Errorf("certificate names = %v", leaf.DNSNames)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.challenges) != 0 {
		t.Errorf("the plain listener got challenge requests with HTTP-01 off: %v", r.challenges)
	}
}

// With real orders at Pebble: an org past its own budget gets no order
// placed, and another org's first certificate is still obtained.
func TestPerOrgBudgetAtTheCA(t *testing.T) {
	r := newRig(t, "a1.greedy.example", "a2.greedy.example", "b1.other.example")
	orgs := verified{"a1.greedy.example": "greedy", "a2.greedy.example": "greedy", "b1.other.example": "other"}
	iss := r.newIssuer(t.TempDir(), port(r.httpLn), port(r.tlsLn), func(c *Config) {
		c.DisableTLSALPN01 = true
		c.MaxObtainsPerOrgPerHour = 1
		c.OrgOf = DomainOrg(orgs)
	})
	r.serve(iss, r.httpLn, r.tlsLn)
	addr := r.tlsLn.Addr().String()

	if _, err := dialTLS(addr, "a1.greedy.example", r.pebble.issuing); err != nil {
		t.Fatalf("greedy org's first certificate: %v", err)
	}
	if _, err := dialTLS(addr, "a2.greedy.example", r.pebble.issuing); err == nil {
		t.Fatal("greedy org got a second certificate past its budget of 1")
	}
	if n := r.pebble.ordersFor("a2.greedy.example"); n != 0 {
		t.Errorf("orders for the refused name = %d, want 0", n)
	}
	if _, err := dialTLS(addr, "b1.other.example", r.pebble.issuing); err != nil {
		t.Fatalf("another org's first certificate after the greedy org's budget was spent: %v", err)
	}
	t.Logf("orders: a1 %d, a2 %d, b1 %d", r.pebble.ordersFor("a1.greedy.example"),
		r.pebble.ordersFor("a2.greedy.example"), r.pebble.ordersFor("b1.other.example"))
	if !strings.Contains(r.logs.String(), errOrgTooManyOrders.Error()) {
		t.Error("the refusal was not logged with its reason")
	}
}

// A domain that is attached but whose validation fails (its DNS points
// nowhere) fails the handshake at once instead of holding it for
// certmagic's in-handshake retries, and is not ordered again until its
// backoff ends.
func TestFailedIssuanceFailsFastAndBacksOff(t *testing.T) {
	r := newRig(t, "nowhere.example.com")
	iss := r.newIssuer(t.TempDir(), port(r.httpLn), port(r.tlsLn), func(c *Config) { c.DisableTLSALPN01 = true })
	r.serve(iss, r.httpLn, r.tlsLn)
	addr := r.tlsLn.Addr().String()

	t0 := time.Now()
	if _, err := dialTLS(addr, "nowhere.example.com", r.pebble.issuing); err == nil {
		t.Fatal("handshake succeeded for a domain that cannot be validated")
	}
	// certmagic alone retries after one minute, inside the handshake.
	if d := time.Since(t0); d > 30*time.Second {
		t.Errorf("failed issuance held the handshake for %v", d)
	}
	if n := r.pebble.ordersFor("nowhere.example.com"); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}

	t0 = time.Now()
	if _, err := dialTLS(addr, "nowhere.example.com", r.pebble.issuing); err == nil {
		t.Fatal("second handshake succeeded")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("handshake in backoff took %v", d)
	}
	if n := r.pebble.ordersFor("nowhere.example.com"); n != 1 {
		t.Errorf("orders after the second handshake = %d, want still 1 (backoff)", n)
	}
	if !strings.Contains(r.logs.String(), `"msg":"certificate not obtained"`) {
		t.Error("the failure was not logged")
	}
}

func TestNewRejectsUnsafeConfig(t *testing.T) {
	allow := func(context.Context, string) error { return nil }
	for name, cfg := range map[string]Config{
		"no storage":    {Allowed: allow},
		"no decision":   {StorageDir: t.TempDir()},
		"no challenges": {StorageDir: t.TempDir(), Allowed: allow, DisableHTTP01: true, DisableTLSALPN01: true},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestLimits(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimits(1, 2, 1, 5)
	if err := l.admit("a.example.com", "org", now); err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	for range 7 {
		waits = append(waits, l.failed("a.example.com", now))
	}
	want := []time.Duration{2, 4, 8, 16, 32, 60, 60}
	for i := range want {
		want[i] *= time.Minute
	}
	if !slices.Equal(waits, want) {
		t.Errorf("backoff = %v, want %v", waits, want)
	}
	if err := l.admit("a.example.com", "org", now.Add(59*time.Minute)); err == nil {
		t.Error("admitted during backoff")
	}
	if err := l.admit("b.example.com", "org", now); err != nil {
		t.Errorf("other name refused: %v", err)
	}
	// The burst of 2 is spent: a third name waits for the rate.
	if err := l.admit("c.example.com", "org", now); err != errTooManyOrders {
		t.Errorf("over the rate: %v", err)
	}
	l.succeeded("a.example.com")
	if err := l.admit("a.example.com", "org", now.Add(2*time.Second)); err != nil {
		t.Errorf("after success and a refill: %v", err)
	}
}

// One org spending its whole budget leaves every other org's first
// certificates alone, up to the global ceiling; the spent org is refused
// without using the global budget.
func TestLimitsPerOrg(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	perHour := rate.Limit(10.0 / 3600)
	l := newLimits(rate.Limit(60.0/3600), 20, perHour, 5)
	granted := 0
	for i := range 50 {
		if l.admit(fmt.Sprintf("d%d.greedy.example", i), "greedy", now) == nil {
			granted++
		}
	}
	t.Logf("greedy org: %d of 50 orders admitted at once", granted)
	if granted != 5 {
		t.Errorf("greedy org got %d orders at once, want its burst of 5", granted)
	}
	if err := l.admit("d99.greedy.example", "greedy", now); err != errOrgTooManyOrders {
		t.Errorf("greedy org over its budget: %v, want errOrgTooManyOrders", err)
	}
	for i := range 3 {
		org := fmt.Sprintf("org%d", i)
		if err := l.admit("www."+org+".example", org, now); err != nil {
			t.Errorf("%s's first certificate refused after another org spent its budget: %v", org, err)
		}
	}
	// The global ceiling holds too: 20 at once across all orgs.
	total := granted + 3
	for i := 3; i < 40; i++ {
		org := fmt.Sprintf("org%d", i)
		if l.admit("www."+org+".example", org, now) == nil {
			total++
		}
	}
	t.Logf("all orgs: %d orders admitted at once, global burst 20", total)
	if total != 20 {
		t.Errorf("%d orders admitted at once across orgs, want the global burst of 20", total)
	}
	// A refusal by the global ceiling does not charge the org.
	if tokens := l.orgs["org39"].TokensAt(now); tokens < 5 {
		t.Errorf("org39 was charged for a refused order: %.1f tokens left of 5", tokens)
	}
}

// The per-org limiters stay bounded however many orgs come by.
func TestLimitsPerOrgBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimits(rate.Inf, 1, 1, 1)
	for i := range maxOrgLimiters * 2 {
		_ = l.admit("x.example", fmt.Sprintf("org%d", i), now)
	}
	t.Logf("%d orgs seen, %d limiters kept (max %d)", maxOrgLimiters*2, len(l.orgs), maxOrgLimiters)
	if len(l.orgs) > maxOrgLimiters {
		t.Errorf("%d org limiters kept, max %d", len(l.orgs), maxOrgLimiters)
	}
}

func TestAttachedDomains(t *testing.T) {
	hosts := libra.NewHostPolicy("sites.example.net", []string{"api.example.com"})
	allow := AttachedDomains(verified{"shop.example.com": "acme", "api.example.com": "evil", "x.sites.example.net": "evil"}, hosts)
	tests := []struct {
		domain string
		ok     bool
	}{
		{"Shop.Example.com.", true},
		{"other.example.com", false},   // unknown or pending
		{"api.example.com", false},     // API_HOSTS, even if the store has it
		{"x.sites.example.net", false}, // under the sites domain
		{"foo.localhost", false},
	}
	for _, tt := range tests {
		err := allow(context.Background(), tt.domain)
		if (err == nil) != tt.ok {
			t.Errorf("allow(%s) = %v, want allowed %v", tt.domain, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrNotAttached) {
			t.Errorf("allow(%s) = %v, want ErrNotAttached", tt.domain, err)
		}
	}
	org, err := DomainOrg(verified{"shop.example.com": "acme"})(context.Background(), "SHOP.example.com")
	if err != nil || org != "acme" {
		t.Errorf("DomainOrg = %q, %v; want acme", org, err)
	}
}

// verified maps verified domains to their orgs.
type verified map[string]string

func (v verified) VerifiedDomainOrg(_ context.Context, domain string) (string, error) {
	return v[domain], nil
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// get fetches url over HTTPS from the server at addr, whatever the URL's
// host resolves to.
func get(t *testing.T, addr, url string, roots *x509.CertPool) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// logBuffer keeps the logs of Pebble, certmagic and the Issuer, shown only
// when a test fails. Not t.Log: certmagic's background work may log after
// the test has returned.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func newLogBuffer(t *testing.T) *logBuffer {
	l := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", l.String())
		}
	})
	return l
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
