// Package http1 serves the site host's hot path: plain GET and HEAD requests
// on HTTP/1.1 keep-alive connections, answered by the same http.Handler that
// net/http runs, without net/http's per-request connection machinery.
//
// Why it exists: on the 2-core machine the project is measured on, net/http
// alone (a handler writing 29 bytes held in memory) reaches 0.63 to 0.70x
// nginx's requests/s, and issue 4 asks the site host for 0.8x. A profile puts
// the difference in net/http's per-request work around the handler: a
// goroutine started for a background read, an extra read system call, four
// deadline changes and the scheduler hand-offs they cause. This loop does one
// read and one write per request.
//
// Only requests that cannot be read two ways are served here. The first
// request that is anything else (another method, a body, HTTP/1.0, a
// Connection, Upgrade or Expect header, a percent-encoded or unusual target,
// a head over 4 KiB, a host or path the Fast function declines) hands the
// connection, with every byte not yet consumed, to the net/http server for
// the rest of its life. So net/http still parses everything unusual and
// answers every malformed request itself; FuzzParse checks that whatever is
// served here reads the same to net/http.
package http1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Server accepts connections, serves simple requests itself and hands every
// other connection to HTTP.
type Server struct {
	// HTTP serves the connections handed over. Its Handler also serves the
	// requests answered here, and its ReadHeaderTimeout, ReadTimeout and
	// IdleTimeout apply here too.
	HTTP *http.Server
	// Fast reports whether a simple request (Method, Host, URL and Header
	// set) may be answered here. The request must not be kept.
	Fast func(r *http.Request) bool
	// Disabled hands every connection to HTTP as soon as it is accepted.
	Disabled bool
	// WriteTimeout, when positive, ends a connection whose client stops
	// reading: every write of up to 256 KiB must finish within it, on both
	// paths. It bounds progress, not the response, so a slow client still
	// gets a large file. HTTP.WriteTimeout, which bounds the whole
	// response, should be left zero.
	WriteTimeout time.Duration
	// Logger receives handler panics. Default slog.Default().
	Logger *slog.Logger
	// Served, when set, is told of every response answered here (status
	// and body bytes the handler wrote); metrics count them. It runs on
	// the fast path, so it must not allocate.
	Served func(status int, bodyBytes int64)

	mu       sync.Mutex
	ln       net.Listener
	handover *handoverListener
	conns    map[*conn]struct{}
	shutting atomic.Bool
}

// Serve accepts connections on ln until Shutdown or Close. It returns
// http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if s.HTTP == nil || s.HTTP.Handler == nil {
		return errors.New("http1: Server.HTTP with a Handler is required")
	}
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.handover = newHandoverListener(ln.Addr())
	s.conns = make(map[*conn]struct{})
	s.mu.Unlock()

	httpDone := make(chan error, 1)
	go func() { httpDone <- s.HTTP.Serve(s.handover) }()

	var backoff time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				<-httpDone
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			s.handover.Close()
			<-httpDone
			return err
		}
		backoff = 0
		if s.Disabled {
			s.handover.give(newProgressConn(rwc, s.WriteTimeout))
			continue
		}
		c := s.newConn(rwc)
		if c == nil {
			rwc.Close()
			continue
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, closes idle connections, lets requests in
// progress finish and waits for their connections to close, here and in
// HTTP, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	// A connection waiting for its next request wakes with a timeout and,
	// seeing shutting, closes; one in a handler closes after its response.
	for c := range s.conns {
		c.rwc.SetReadDeadline(aLongTimeAgo)
	}
	s.mu.Unlock()

	err := s.HTTP.Shutdown(ctx)
	wait := time.Millisecond
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
			wait = min(2*wait, 100*time.Millisecond)
		}
	}
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutting.Store(true)
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.rwc.Close()
	}
	s.mu.Unlock()
	return s.HTTP.Close()
}

var aLongTimeAgo = time.Unix(1, 0)

func (s *Server) newConn(rwc net.Conn) *conn {
	c := &conn{srv: s, rwc: rwc}
	c.wr = progressWriter{conn: rwc, timeout: s.WriteTimeout}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		return nil
	}
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// headerTimeout and idleTimeout follow net/http's fallbacks.
func (s *Server) headerTimeout() time.Duration {
	if s.HTTP.ReadHeaderTimeout > 0 {
		return s.HTTP.ReadHeaderTimeout
	}
	return s.HTTP.ReadTimeout
}

// headLimit is HTTP.MaxHeaderBytes, or net/http's default: a head the fast
// loop could hold but net/http would refuse goes to net/http, which answers
// 431, so both paths keep one limit.
func (s *Server) headLimit() int {
	if s.HTTP.MaxHeaderBytes > 0 {
		return s.HTTP.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) idleTimeout() time.Duration {
	if s.HTTP.IdleTimeout > 0 {
		return s.HTTP.IdleTimeout
	}
	return s.HTTP.ReadTimeout
}

// logPanic reports a handler's panic as net/http does, except for
// http.ErrAbortHandler, which asks for a silent abort.
func (s *Server) logPanic(c *conn, v any) {
	if v == http.ErrAbortHandler {
		return
	}
	buf := make([]byte, 16<<10)
	buf = buf[:runtime.Stack(buf, false)]
	s.logger().Error("http1: panic serving", "remote", c.rwc.RemoteAddr().String(), "panic", v, "stack", string(buf))
}

// handoverListener is the listener net/http serves: Accept returns the
// connections the fast loop gives up.
type handoverListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoverListener(addr net.Addr) *handoverListener {
	return &handoverListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoverListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoverListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoverListener) Addr() net.Addr { return l.addr }

// give passes c to net/http, or closes it when net/http has stopped.
func (l *handoverListener) give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// ProgressListener wraps ln so that every connection it accepts writes
// under the same progress deadline as Server.WriteTimeout: for servers,
// such as the HTTPS one, that net/http runs without this package's loop.
func ProgressListener(ln net.Listener, timeout time.Duration) net.Listener {
	if timeout <= 0 {
		return ln
	}
	return progressListener{Listener: ln, timeout: timeout}
}

type progressListener struct {
	net.Listener
	timeout time.Duration
}

func (l progressListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newProgressConn(c, l.timeout), nil
}

// FastPath reports whether w is the fast loop's writer: a handler that
// counts responses itself leaves those to Server.Served.
func FastPath(w http.ResponseWriter) bool {
	_, ok := w.(*response)
	return ok
}
