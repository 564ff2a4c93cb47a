package http1

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// conn is one client connection served by the fast loop.
type conn struct {
	srv *Server
	rwc net.Conn

	// in holds bytes read and not yet consumed: in[start:end].
	in         [maxHead]byte
	start, end int

	// out collects responses until there is nothing more to read at once,
	// so pipelined requests get one write.
	out  []byte
	outp *[]byte // the pool's handle on out

	rq *request
	rw response
	// wr writes under the server's progress deadline.
	wr progressWriter

	// served counts the responses sent. deadlineSet is when the read
	// deadline was set last, and idleDeadline whether it was the idle one,
	// which is moved at most once a second rather than per request.
	served       int
	deadlineSet  time.Time
	idleDeadline bool
}

// flushAt is how much pipelined output may wait for the next response.
const flushAt = 32 << 10

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func (c *conn) serve() {
	handedOver := false
	defer func() {
		if v := recover(); v != nil {
			// What the handler had written of its response is dropped;
			// the responses before it still go out.
			c.out = c.out[:min(c.rw.mark, len(c.out))]
			c.flush()
			c.srv.logPanic(c, v)
		}
		c.releaseOut()
		c.srv.forget(c)
		if !handedOver {
			c.rwc.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), http.ServerContextKey, c.srv.HTTP))
	defer cancel()
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.rwc.LocalAddr())
	c.rq = newRequest()
	c.rq.req = *c.rq.req.WithContext(ctx)
	c.rq.req.URL = &c.rq.url
	c.rq.req.RemoteAddr = c.rwc.RemoteAddr().String()
	c.rw.c = c
	c.rw.hdr = make(http.Header)

	// The first request must arrive within the header timeout, as in
	// net/http.
	if d := c.srv.headerTimeout(); d > 0 {
		c.setDeadline(time.Now(), d, false)
	}
	for {
		n, err := c.readHead()
		if err != nil {
			c.flush()
			return
		}
		if n == 0 || n > c.srv.headLimit() || !c.rq.parse(c.in[c.start:c.start+n]) || !c.srv.Fast(&c.rq.req) {
			if c.flush() == nil {
				handedOver = true
				c.handOver()
			}
			return
		}
		c.start += n
		keep := c.rw.serve(&c.rq.req)
		c.served++
		if !keep || c.srv.shutting.Load() {
			c.flush()
			return
		}
		// readHead flushes before it waits; pipelined responses wait
		// for one another up to flushAt.
		if len(c.out) >= flushAt && c.flush() != nil {
			return
		}
	}
}

// readHead returns the length of the request head at in[start:], reading
// as needed, or 0 if the head will not fit: the request then goes to
// net/http. An error (the client left, a timeout, shutdown) ends the
// connection.
func (c *conn) readHead() (int, error) {
	var headStart time.Time
	for {
		if n := headEnd(c.in[c.start:c.end]); n > 0 {
			return n, nil
		}
		if c.start > 0 {
			// Move what is left of the buffer to its front.
			c.end = copy(c.in[:], c.in[c.start:c.end])
			c.start = 0
		}
		if c.end == len(c.in) {
			return 0, nil
		}
		// Responses go out before waiting for more.
		if err := c.flush(); err != nil {
			return 0, err
		}
		// Between requests the idle timeout applies; to a partial head,
		// the header timeout from its first bytes. The first request's
		// header deadline was set at accept.
		if now := time.Now(); c.served > 0 && c.end == 0 {
			if d := c.srv.idleTimeout(); d > 0 && (!c.idleDeadline || now.Sub(c.deadlineSet) > time.Second) {
				c.setDeadline(now, d, true)
			}
		} else if c.served > 0 && headStart.IsZero() {
			headStart = now
			if d := c.srv.headerTimeout(); d > 0 {
				c.setDeadline(now, d, false)
			}
		}
		// Checked after the deadline is set, so that Shutdown, which sets
		// a deadline in the past after setting shutting, always wins.
		if c.end == 0 && c.srv.shutting.Load() {
			return 0, net.ErrClosed
		}
		n, err := c.rwc.Read(c.in[c.end:])
		c.end += n
		if err != nil {
			if n > 0 && err == io.EOF {
				continue // serve what came with the EOF; the next read fails again
			}
			if err == io.EOF && c.end > c.start {
				// A head cut short: net/http answers it (400).
				return 0, nil
			}
			return 0, err
		}
	}
}

func (c *conn) setDeadline(now time.Time, d time.Duration, idle bool) {
	c.rwc.SetReadDeadline(now.Add(d))
	c.deadlineSet, c.idleDeadline = now, idle
}

// flush writes the responses collected.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.wr.write(c.out)
	c.out = c.out[:0]
	c.releaseOut()
	return err
}

// buffer returns the output buffer, taking one from the pool when the
// connection holds none: an idle connection keeps only its read buffer.
func (c *conn) buffer() []byte {
	if c.outp == nil {
		c.outp = outPool.Get().(*[]byte)
		c.out = (*c.outp)[:0]
	}
	return c.out
}

func (c *conn) releaseOut() {
	if c.outp != nil && len(c.out) == 0 {
		if cap(c.out) <= 64<<10 {
			*c.outp = c.out
			outPool.Put(c.outp)
		}
		c.out, c.outp = nil, nil
	}
}

// handOver gives the connection, and the bytes read but not consumed, to
// net/http. Deadlines are net/http's from here on.
func (c *conn) handOver() {
	c.rwc.SetReadDeadline(time.Time{})
	var rest []byte
	if c.start < c.end {
		rest = append([]byte(nil), c.in[c.start:c.end]...)
	}
	c.srv.handover.give(&prefixConn{Conn: newProgressConn(c.rwc, c.srv.WriteTimeout), prefix: rest})
}

// prefixConn replays bytes the fast loop read before reading the
// connection itself.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// ReadFrom keeps sendfile available to net/http for large files.
func (p *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := p.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{p.Conn}, r)
}
