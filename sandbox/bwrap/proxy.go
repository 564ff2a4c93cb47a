package bwrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/netguard"
)

// ProxyConfig configures a Proxy.
type ProxyConfig struct {
	// AllowedHosts are the only destinations: "registry.npmjs.org" (any
	// allowed port), "registry.example.com:8443" (that port only) or
	// "*.example.com" (its subdomains, not the bare domain). Names are
	// compared case-insensitively. Required.
	AllowedHosts []string
	// AllowedPorts are the ports a host entry without a port may use.
	// Default: 443 only. Port 80 would let a build send plain HTTP with any
	// Host header to whatever else sits behind a registry's CDN front.
	AllowedPorts []int
	// DeniedNets are refused in addition to the built-in list.
	DeniedNets []netip.Prefix
	// DialTimeout bounds resolving and connecting. Default: 15 s.
	DialTimeout time.Duration
	// IdleTimeout closes a tunnel that carried nothing either way for this
	// long. Default: 2 minutes.
	IdleTimeout time.Duration
	// MaxConns caps the client connections one Proxy holds at once, tunnels
	// included; more wait in the listen backlog, costing the service
	// nothing. Default: 64 (npm opens at most 15 at a time).
	MaxConns int
	// shared, if set, is a cap that several proxies draw from as well: the
	// provider sizes it so that all sandboxes together cannot use the
	// service's file descriptors up.
	shared connLimit
	// Resolver resolves allowed names. Default: net.DefaultResolver.
	Resolver *net.Resolver
	// Logger records refusals. Default: discard.
	Logger *slog.Logger
}

// Proxy is an HTTP forward proxy for the install phase that only reaches
// allow-listed hosts on public addresses. HTTPS goes through CONNECT tunnels,
// so TLS stays end to end between the package manager and the registry;
// plain HTTP requests in absolute form are forwarded too.
//
// The address check runs on the address actually being connected to, after
// DNS, so an allowed name that resolves (or is rebound) to loopback, a
// private range, link-local (cloud metadata) or one of this host's own
// addresses is refused before any packet is sent.
type Proxy struct {
	cfg       ProxyConfig
	conns     connLimit // this proxy's share of MaxConns, over all listeners
	srv       *http.Server
	transport *http.Transport
	dialer    *net.Dialer

	mu      sync.Mutex
	closed  bool
	tunnels map[net.Conn]struct{}
	wg      sync.WaitGroup

	localMu    sync.Mutex
	localAddrs []netip.Addr
	localAt    time.Time
}

// NewProxy validates cfg and returns a proxy that serves nothing until Start.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if len(cfg.AllowedHosts) == 0 {
		return nil, errors.New("proxy: no allowed hosts")
	}
	for _, h := range cfg.AllowedHosts {
		if _, _, err := parseAllowEntry(h); err != nil {
			return nil, err
		}
	}
	for _, port := range cfg.AllowedPorts {
		if port < 1 || port > 65535 {
			return nil, fmt.Errorf("proxy: bad allowed port %d", port)
		}
	}
	if len(cfg.AllowedPorts) == 0 {
		cfg.AllowedPorts = []int{443}
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultProxyMaxConns
	}
	if cfg.MaxConns < 1 {
		return nil, fmt.Errorf("proxy: max connections %d: must be positive", cfg.MaxConns)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, conns: newConnLimit(cfg.MaxConns), tunnels: map[net.Conn]struct{}{}}
	p.dialer = &net.Dialer{
		Timeout:        cfg.DialTimeout,
		Resolver:       cfg.Resolver,
		ControlContext: p.checkDial,
	}
	p.transport = &http.Transport{
		// Never another proxy from the service's environment.
		Proxy:                 nil,
		DialContext:           p.dialContext,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
	}
	p.srv = &http.Server{
		Handler: p,
		// A connection that says nothing, or idles between requests, gives
		// its slot back soon: slots are few (MaxConns).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// Start serves l in the background until Close. It may be called for
// several listeners; MaxConns counts the connections of all of them.
func (p *Proxy) Start(inner net.Listener) error {
	l := newLimitListener(inner, p.conns, p.cfg.shared)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy: closed")
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.cfg.Logger.Warn("sandbox proxy stopped", "err", err)
		}
	}()
	return nil
}

// Close stops every listener and closes every connection and tunnel.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for c := range p.tunnels {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.srv.Close()
	p.transport.CloseIdleConnections()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("proxy: close: %w", err)
	}
	return nil
}

// ServeHTTP implements the proxy protocol: CONNECT host:port, or a request
// with an absolute http:// URL.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Scheme != "http" {
		http.Error(w, "sandbox proxy: only CONNECT and absolute http:// requests are proxied", http.StatusBadRequest)
		return
	}
	p.serveHTTP(w, r)
}

func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if err := p.Allowed(target); err != nil {
		p.refuse(w, target, err, http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.DialTimeout)
	upstream, err := p.dialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		p.refuseDial(w, target, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "sandbox proxy: cannot tunnel", http.StatusInternalServerError)
		return
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if !p.track(client, upstream) {
		client.Close()
		upstream.Close()
		return
	}
	defer p.untrack(client, upstream)
	defer client.Close()
	defer upstream.Close()
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// Bytes the client sent right after its CONNECT (a TLS ClientHello that
	// raced the 200) are already in the server's buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := upstream.Write(b); err != nil {
			return
		}
	}
	act := &activity{}
	act.touch()
	pipeBoth(&idleConn{Conn: client, act: act, idle: p.cfg.IdleTimeout}, &idleConn{Conn: upstream, act: act, idle: p.cfg.IdleTimeout})
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Host
	if r.URL.Port() == "" {
		target = net.JoinHostPort(r.URL.Hostname(), "80")
	}
	if err := p.Allowed(target); err != nil {
		p.refuse(w, target, err, http.StatusForbidden)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	for _, h := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		out.Header.Del(h)
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		p.refuseDial(w, target, err)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *Proxy) refuse(w http.ResponseWriter, target string, err error, code int) {
	p.cfg.Logger.Info("sandbox proxy refused", "target", target, "reason", err)
	http.Error(w, "sandbox proxy: "+err.Error(), code)
}

func (p *Proxy) refuseDial(w http.ResponseWriter, target string, err error) {
	var de *deniedAddrError
	if errors.As(err, &de) {
		p.refuse(w, target, de, http.StatusForbidden)
		return
	}
	p.refuse(w, target, fmt.Errorf("cannot reach %s: %w", target, err), http.StatusBadGateway)
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.tunnels[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.tunnels, c)
	}
}

// Allowed reports whether hostport ("host:port") is on the allow-list. It
// does not look at addresses: that happens when connecting.
func (p *Proxy) Allowed(hostport string) error {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("bad target %q: %w", hostport, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("bad port in %q", hostport)
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, entry := range p.cfg.AllowedHosts {
		eh, ep, _ := parseAllowEntry(entry)
		if !hostMatches(eh, host) {
			continue
		}
		if (ep != 0 && ep == port) || (ep == 0 && slices.Contains(p.cfg.AllowedPorts, port)) {
			return nil
		}
	}
	return fmt.Errorf("host not allowed: %s", hostport)
}

// parseAllowEntry splits "host[:port]" into a lower-case host and a port (0
// when absent).
func parseAllowEntry(e string) (string, int, error) {
	e = strings.TrimSpace(e)
	host, port := e, 0
	if h, p, err := net.SplitHostPort(e); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("proxy: bad port in allowed host %q", e)
		}
		host, port = h, n
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || host == "*" || strings.Contains(host[1:], "*") || strings.HasPrefix(host, "*") && !strings.HasPrefix(host, "*.") {
		return "", 0, fmt.Errorf("proxy: bad allowed host %q", e)
	}
	return host, port, nil
}

func hostMatches(pattern, host string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return pattern == host
}

func (p *Proxy) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return p.dialer.DialContext(ctx, network, addr)
}

// deniedAddrError is a refusal to connect to an address.
type deniedAddrError struct {
	addr   netip.Addr
	reason string
}

func (e *deniedAddrError) Error() string {
	return fmt.Sprintf("refusing to connect to %s (%s)", e.addr, e.reason)
}

// checkDial runs after DNS and before connect(2) for every address tried.
func (p *Proxy) checkDial(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("proxy: unexpected dial address %q: %w", address, err)
	}
	ip := ap.Addr().Unmap().WithZone("")
	if reason := netguard.Reason(ip); reason != "" {
		return &deniedAddrError{addr: ip, reason: reason}
	}
	for _, n := range p.cfg.DeniedNets {
		if n.Contains(ip) {
			return &deniedAddrError{addr: ip, reason: "denied by configuration"}
		}
	}
	if slices.Contains(p.local(), ip) {
		return &deniedAddrError{addr: ip, reason: "address of this host"}
	}
	return nil
}

// local returns this host's own addresses: a service bound to 0.0.0.0 is
// reachable on them just as on loopback. Cached briefly because addresses
// rarely change and every dial asks.
func (p *Proxy) local() []netip.Addr {
	p.localMu.Lock()
	defer p.localMu.Unlock()
	if time.Since(p.localAt) < 10*time.Second {
		return p.localAddrs
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return p.localAddrs
	}
	p.localAddrs = p.localAddrs[:0]
	for _, a := range addrs {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil {
			p.localAddrs = append(p.localAddrs, pfx.Addr().Unmap())
		}
	}
	p.localAt = time.Now()
	return p.localAddrs
}

// activity is the last time a tunnel carried data in either direction.
type activity struct {
	mu   sync.Mutex
	last time.Time
}

func (a *activity) touch() {
	a.mu.Lock()
	a.last = time.Now()
	a.mu.Unlock()
}

func (a *activity) since() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return time.Since(a.last)
}

// idleConn times a read out only when neither direction of the tunnel moved
// for the idle period: a long download with nothing sent upstream is not
// idle.
type idleConn struct {
	net.Conn
	act  *activity
	idle time.Duration
}

func (c *idleConn) Read(b []byte) (int, error) {
	for {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
		n, err := c.Conn.Read(b)
		if n > 0 {
			c.act.touch()
		}
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() && c.act.since() < c.idle {
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *idleConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.act.touch()
	}
	return n, err
}

// CloseWrite passes the half-close through the wrapper.
func (c *idleConn) CloseWrite() error {
	if hc, ok := c.Conn.(halfCloser); ok {
		return hc.CloseWrite()
	}
	return c.Conn.Close()
}

// DefaultRegistryHosts returns the allow-list entry for the npm registry that
// `npm config get registry` names (as the service's user sees it), or
// registry.npmjs.org when npm is missing or says nothing usable.
func DefaultRegistryHosts(ctx context.Context) []string {
	const fallback = "registry.npmjs.org"
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "npm", "config", "get", "registry").Output()
	if err != nil {
		return []string{fallback}
	}
	u, err := url.Parse(strings.TrimSpace(string(out)))
	if err != nil || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return []string{fallback}
	}
	if u.Port() != "" {
		return []string{u.Host}
	}
	return []string{strings.ToLower(u.Hostname())}
}
