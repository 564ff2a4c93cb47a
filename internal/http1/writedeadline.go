package http1

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rearmAfter is how stale the write deadline may get before a write moves
// it: moving it on every write would cost a timer update per response,
// which the fast loop exists to avoid. With short timeouts an eighth of
// the timeout is used instead.
const rearmAfter = time.Second

// progressWriter writes to a connection under a progress deadline (issue
// 8, finding 10): a write may take as long as it needs while the client
// keeps acknowledging data, and fails once a whole timeout passes in which
// it acknowledged nothing. So a slow client still downloads a large file,
// while one that stops reading is cut off within about two timeouts.
// Progress is the kernel's count of acknowledged bytes (TCP_INFO), not the
// completion of writes: the kernel wakes a blocked writer only after half
// its send buffer (megabytes, once autotuned) has drained, which a slow
// reader may take longer than a timeout to do. Its zero timeout means no
// write deadline.
type progressWriter struct {
	conn    net.Conn
	timeout time.Duration
	armed   time.Time
	acked   uint64 // bytes acknowledged when the deadline was set
}

// arm moves the write deadline to timeout from now, unless it was moved
// recently.
func (pw *progressWriter) arm() {
	if pw.timeout <= 0 {
		return
	}
	if now := time.Now(); now.Sub(pw.armed) >= min(rearmAfter, pw.timeout/8) {
		pw.conn.SetWriteDeadline(now.Add(pw.timeout))
		pw.armed = now
		pw.acked, _ = bytesAcked(pw.conn)
	}
}

// progressed reports whether err is a write deadline that passed while the
// client was still acknowledging data; the caller then writes the rest.
func (pw *progressWriter) progressed(err error) bool {
	if pw.timeout <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	acked, ok := bytesAcked(pw.conn)
	if !ok || acked <= pw.acked {
		return false
	}
	pw.armed = time.Time{} // so that the next arm sets a new deadline
	return true
}

// write sends p under the progress deadline.
func (pw *progressWriter) write(p []byte) (int, error) {
	written := 0
	for {
		pw.arm()
		n, err := pw.conn.Write(p[written:])
		written += n
		if err == nil || !pw.progressed(err) {
			return written, err
		}
	}
}

// writeBuffers sends bufs, in one writev when the connection allows,
// under the progress deadline.
func (pw *progressWriter) writeBuffers(bufs net.Buffers) error {
	for {
		pw.arm()
		// WriteTo consumes what it wrote from bufs.
		_, err := bufs.WriteTo(pw.conn)
		if err == nil || !pw.progressed(err) {
			return err
		}
	}
}

// readFrom copies r with rf (sendfile, for a file) under the progress
// deadline. After a timeout r has advanced past what was sent (a file's
// offset, a LimitedReader's N), so the copy resumes where it stopped.
func (pw *progressWriter) readFrom(rf io.ReaderFrom, r io.Reader) (int64, error) {
	var total int64
	for {
		pw.arm()
		n, err := rf.ReadFrom(r)
		total += n
		if err == nil || !pw.progressed(err) {
			return total, err
		}
	}
}

// bytesAcked is how many bytes the peer has acknowledged on c, when c is
// a TCP connection on Linux.
func bytesAcked(c net.Conn) (uint64, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil {
		return 0, false
	}
	return info.Bytes_acked, true
}

// progressConn is a connection whose writes run under a progress deadline:
// what net/http is given, since it cannot set one of that kind itself (its
// WriteTimeout bounds a whole response, which would cut off large files).
type progressConn struct {
	net.Conn
	pw progressWriter
}

func newProgressConn(c net.Conn, timeout time.Duration) net.Conn {
	if timeout <= 0 {
		return c
	}
	return &progressConn{Conn: c, pw: progressWriter{conn: c, timeout: timeout}}
}

func (c *progressConn) Write(p []byte) (int, error) { return c.pw.write(p) }

// ReadFrom keeps sendfile available to net/http for large files.
func (c *progressConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{c}, r)
	}
	return c.pw.readFrom(rf, r)
}

// SetWriteDeadline keeps the progress deadline when net/http clears the
// write deadline, which it does after every response: the next writes
// would otherwise have none until the deadline is due to move, and
// re-arming per response would cost a TCP_INFO query each. A deadline
// net/http or a handler sets passes through, and the next write arms the
// progress deadline again.
func (c *progressConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() && !c.pw.armed.IsZero() {
		return c.Conn.SetWriteDeadline(c.pw.armed.Add(c.pw.timeout))
	}
	c.pw.armed = time.Time{}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline passes through: net/http uses it to clear every deadline of
// a connection it hands to a Hijacker, which owns the connection then.

func (c *progressConn) SetDeadline(t time.Time) error {
	c.pw.armed = time.Time{}
	return c.Conn.SetDeadline(t)
}

// CloseWrite lets net/http half-close, as it does on a bare TCP connection
// before closing one whose request body it did not read.
func (c *progressConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
