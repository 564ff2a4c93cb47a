package bwrap

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProxyAllowList(t *testing.T) {
	p, err := NewProxy(ProxyConfig{AllowedHosts: []string{"Registry.NPMJS.org.", "*.example.com", "pkg.example.net:8443"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		target string
		ok     bool
	}{
		{"registry.npmjs.org:443", true},
		{"REGISTRY.npmjs.org.:443", true},
		{"registry.npmjs.org:80", false}, // only 443 unless configured
		{"registry.npmjs.org:22", false},
		{"evil-registry.npmjs.org:443", false},
		{"registry.npmjs.org.evil.com:443", false},
		{"a.example.com:443", true},
		{"a.b.example.com:443", true},
		{"example.com:443", false},
		{"a.example.com:8443", false},
		{"pkg.example.net:8443", true},
		{"pkg.example.net:443", false},
		{"104.16.0.35:443", false},
		{"no-port", false},
	}
	for _, tc := range cases {
		if err := p.Allowed(tc.target); (err == nil) != tc.ok {
			t.Errorf("Allowed(%q) = %v, want ok=%v", tc.target, err, tc.ok)
		}
	}
	for _, bad := range []string{"*", "a*.com", "*example.com", "x:99999", ""} {
		if _, err := NewProxy(ProxyConfig{AllowedHosts: []string{bad}}); err == nil {
			t.Errorf("NewProxy accepted %q", bad)
		}
	}
}

// connectThrough sends one CONNECT through the proxy at addr and returns the
// status code.
func connectThrough(t *testing.T, addr, target string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProxyRefusesInternalTargets(t *testing.T) {
	// A service on loopback that an allow-listed name resolves to.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var hits atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)

	// One of this host's own, non-loopback addresses.
	var own string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil && !pfx.Addr().IsLoopback() && pfx.Addr().Is4() {
				own = pfx.Addr().String()
				break
			}
		}
	}

	allowed := []string{
		"registry.npmjs.org",
		"localhost:" + port, // resolves to loopback: allowed by name, refused by address
		"10.20.30.40:443",
		"169.254.169.254:80",
		"[fd00:ec2::254]:80",
	}
	if own != "" {
		allowed = append(allowed, own+":"+port)
	}
	// Port 80 too, so that plain HTTP forwarding is exercised below.
	p, err := NewProxy(ProxyConfig{AllowedHosts: allowed, AllowedPorts: []int{443, 80}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(pl); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addr := pl.Addr().String()

	cases := []struct {
		target string
		want   int
	}{
		{"example.com:443", http.StatusForbidden},       // not on the list
		{"127.0.0.1:" + port, http.StatusForbidden},     // not on the list
		{"localhost:" + port, http.StatusForbidden},     // listed, but loopback
		{"10.20.30.40:443", http.StatusForbidden},       // listed, but private
		{"169.254.169.254:80", http.StatusForbidden},    // listed, but metadata
		{"[fd00:ec2::254]:80", http.StatusForbidden},    // listed, but private v6
		{"registry.npmjs.org:22", http.StatusForbidden}, // port not allowed
		{"registry.npmjs.org:443", http.StatusOK},       // the one way out
	}
	if own != "" {
		cases = append(cases, struct {
			target string
			want   int
		}{own + ":" + port, http.StatusForbidden})
	}
	for _, tc := range cases {
		if got := connectThrough(t, addr, tc.target); got != tc.want {
			t.Errorf("CONNECT %s: %d, want %d", tc.target, got, tc.want)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback service got %d connections through the proxy", n)
	}

	// Plain HTTP goes through the same checks.
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}, Timeout: 20 * time.Second}
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://example.com/", "http://localhost:" + port + "/"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s via proxy: %d, want 403", u, resp.StatusCode)
		}
	}
	// An allowed plain-HTTP request is forwarded: whatever the registry
	// answers, it is not the proxy's refusal.
	resp, err := client.Get("http://registry.npmjs.org/is-number")
	if err != nil {
		t.Fatalf("GET via proxy: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusBadGateway {
		t.Errorf("allowed plain HTTP request refused: %d", resp.StatusCode)
	}

	// Close ends open tunnels and stops serving.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT registry.npmjs.org:443 HTTP/1.1\r\nHost: registry.npmjs.org:443\r\n\r\n")
	br := bufio.NewReader(c)
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("tunnel: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := br.ReadByte()
		done <- err
	}()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("tunnel still delivering data after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tunnel still open after Close")
	}
	c.Close()
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("proxy still accepting after Close")
	}
}

func TestDefaultRegistryHosts(t *testing.T) {
	hosts := DefaultRegistryHosts(context.Background())
	if len(hosts) != 1 || hosts[0] == "" || strings.ContainsAny(hosts[0], "/ ") {
		t.Fatalf("DefaultRegistryHosts = %q", hosts)
	}
	if _, err := NewProxy(ProxyConfig{AllowedHosts: hosts}); err != nil {
		t.Fatalf("default hosts not usable: %v", err)
	}
}

// TestProxyPorts: an allowed registry is reached on 443 only unless more
// ports are configured; on :80 a CDN front would take plain HTTP with any
// Host header and forward it to whoever else it serves.
func TestProxyPorts(t *testing.T) {
	cases := []struct {
		name   string
		ports  []int
		target string
		want   int
	}{
		{"default refuses 80", nil, "registry.npmjs.org:80", http.StatusForbidden},
		{"default allows 443", nil, "registry.npmjs.org:443", http.StatusOK},
		{"default refuses plain http", nil, "http://registry.npmjs.org/is-number", http.StatusForbidden},
		{"configured 8443 refuses 443", []int{8443}, "registry.npmjs.org:443", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewProxy(ProxyConfig{AllowedHosts: []string{"registry.npmjs.org"}, AllowedPorts: tc.ports, DialTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(l); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			got := 0
			if strings.HasPrefix(tc.target, "http://") {
				client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: l.Addr().String()})}, Timeout: 20 * time.Second}
				resp, err := client.Get(tc.target)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				got = resp.StatusCode
			} else {
				got = connectThrough(t, l.Addr().String(), tc.target)
			}
			if got != tc.want {
				t.Fatalf("%s with ports %v: %d, want %d", tc.target, tc.ports, got, tc.want)
			}
		})
	}
	if _, err := NewProxy(ProxyConfig{AllowedHosts: []string{"registry.npmjs.org"}, AllowedPorts: []int{70000}}); err == nil {
		t.Fatal("port 70000 accepted")
	}
}

// TestProxyConnectionCaps: past its own cap, or past a cap shared with
// other proxies, a proxy accepts nothing more until a connection closes.
func TestProxyConnectionCaps(t *testing.T) {
	cases := []struct {
		name       string
		maxConns   int
		shared     int
		sharedUsed int // slots other proxies hold
		idle       int // connections the test opens and holds first
	}{
		{"own cap", 4, 0, 0, 4},
		{"shared cap", 64, 5, 3, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ProxyConfig{AllowedHosts: []string{"registry.npmjs.org"}, MaxConns: tc.maxConns}
			if tc.shared > 0 {
				cfg.shared = newConnLimit(tc.shared)
				for range tc.sharedUsed {
					cfg.shared <- struct{}{}
				}
			}
			p, err := NewProxy(cfg)
			if err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(l); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var idle []net.Conn
			for range tc.idle {
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				idle = append(idle, c)
			}
			// A refused target answers at once, without any network.
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
			br := bufio.NewReader(c)
			_ = c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
			if _, err := br.ReadByte(); err == nil {
				t.Fatalf("connection %d served over the cap", tc.idle+1)
			}
			idle[0].Close()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("not served once a slot was free: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("CONNECT example.com:443: %d, want 403", resp.StatusCode)
			}
		})
	}
}
