package bwrap

import (
	"fmt"
	"net"
	"sync"
	"syscall"
)

// connLimit is a counting semaphore of connections.
type connLimit chan struct{}

func newConnLimit(n int) connLimit { return make(connLimit, n) }

// limitListener accepts a connection only once it holds a slot in its own
// limit and, if set, in a limit shared with other listeners. It waits
// before accept(2), so connections over the limit stay in the kernel's
// backlog and cost the service no file descriptor; when the backlog is
// full the client's connect fails instead.
type limitListener struct {
	net.Listener
	own, shared connLimit
	done        chan struct{}
	closeOnce   sync.Once
}

func newLimitListener(l net.Listener, own, shared connLimit) *limitListener {
	return &limitListener{Listener: l, own: own, shared: shared, done: make(chan struct{})}
}

func (l *limitListener) acquire() bool {
	select {
	case l.own <- struct{}{}:
	case <-l.done:
		return false
	}
	if l.shared == nil {
		return true
	}
	select {
	case l.shared <- struct{}{}:
		return true
	case <-l.done:
		<-l.own
		return false
	}
}

func (l *limitListener) release() {
	if l.shared != nil {
		<-l.shared
	}
	<-l.own
}

func (l *limitListener) Accept() (net.Conn, error) {
	if !l.acquire() {
		return nil, fmt.Errorf("proxy listener: %w", net.ErrClosed)
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	return &limitedConn{Conn: c, release: l.release}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives its slot back when closed, however often Close is
// called (the HTTP server and a hijacked tunnel may both close it).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps half-closing possible for tunnels.
func (c *limitedConn) CloseWrite() error {
	if hc, ok := c.Conn.(halfCloser); ok {
		return hc.CloseWrite()
	}
	return c.Conn.Close()
}

// fdReserve is how many file descriptors the service keeps for itself
// (database, artifact store, site and API connections) whatever the
// sandboxes' proxies do.
func fdReserve(soft uint64) uint64 { return max(1024, soft/4) }

// proxyConnBudget is how many proxy connections all sandboxes together may
// hold: each costs up to two descriptors (the client's and the upstream
// one), and the reserve is never touched. Go raises the soft RLIMIT_NOFILE
// to the hard limit at start-up, so soft is what the process really has.
func proxyConnBudget() (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read open files limit: %w", err)
	}
	reserve := fdReserve(rl.Cur)
	if rl.Cur <= reserve+64 {
		return 0, fmt.Errorf("open files limit %d leaves no room for build proxies beside a reserve of %d (raise ulimit -n)", rl.Cur, reserve)
	}
	return int(min((rl.Cur-reserve)/2, 1<<20)), nil
}
