package http1

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxHeld is the most body held back to compute a Content-Length the
// handler did not declare; a larger body is sent in chunks. It is net/http's
// figure (bufferBeforeChunkingSize), so that both send the same.
const maxHeld = 2048

// copyMax is the largest body copied into the output buffer.
const copyMax = 8 << 10

// response is the http.ResponseWriter of the fast loop. It follows what
// net/http's writer does for the same calls: a Content-Length for bodies
// written whole, sniffed Content-Type, Date, the headers a status without a
// body must not have, closing after a short body.
type response struct {
	c    *conn
	hdr  http.Header
	keys []string // header keys, sorted for writing; reused
	body []byte   // body held back while no Content-Length is declared; reused

	head        bool
	status      int
	wroteHeader bool  // the status and the handler's fields are in c.out
	sent        bool  // so is the rest of the header
	declared    int64 // the handler's Content-Length, or -1
	written     int64 // body bytes the handler wrote
	chunked     bool
	closeAfter  bool
	sniff       bool // no Content-Type or Content-Encoding: sniff the body
	dated       bool // the handler set Date
	// mark is where this response starts in c.out: after a panic, what
	// follows it is dropped rather than sent half made.
	mark int
}

// serve runs the handler for req and reports whether the connection may
// serve another request.
func (w *response) serve(req *http.Request) bool {
	clear(w.hdr)
	*w = response{c: w.c, hdr: w.hdr, keys: w.keys[:0], body: w.body[:0], head: req.Method == http.MethodHead,
		declared: -1, mark: len(w.c.out)}
	w.c.srv.HTTP.Handler.ServeHTTP(w, req)
	keep := w.finish()
	if served := w.c.srv.Served; served != nil {
		served(w.status, w.written)
	}
	return keep
}

func (w *response) Header() http.Header { return w.hdr }

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.hdr["Content-Length"]; len(cl) > 0 {
		if v, err := strconv.ParseInt(cl[0], 10, 64); err == nil && v >= 0 {
			w.declared = v
		} else {
			delete(w.hdr, "Content-Length")
		}
	}
	if v := w.hdr["Connection"]; len(v) > 0 && hasToken(v[0], "close") || w.c.srv.shutting.Load() {
		w.closeAfter = true
	}
	w.startHeader()
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	// Counted even when refused, as net/http does: a response that went
	// over its length is cut short and its connection closed.
	w.written += int64(len(p))
	if w.declared >= 0 && w.written > w.declared {
		return 0, http.ErrContentLength
	}
	switch {
	case w.chunked:
		w.appendChunk(p)
	case w.sent:
		if !w.head {
			w.append(p)
		}
	case w.declared >= 0:
		w.endHeader(p, -1)
		if !w.head {
			w.append(p)
		}
	case w.head:
		// Eaten, but counted for the Content-Length, and the first bytes
		// kept for sniffing, as net/http does for HEAD.
		if n := 512 - len(w.body); n > 0 {
			w.body = append(w.body, p[:min(n, len(p))]...)
		}
	default:
		w.body = append(w.body, p...)
		if len(w.body) > maxHeld {
			// Too much to hold: sent in chunks, as net/http does.
			w.chunked = true
			w.endHeader(w.body, -1)
			w.appendChunk(w.body)
			w.body = w.body[:0]
		}
	}
	return len(p), nil
}

// ReadFrom sends a declared body from src with the connection's own
// ReadFrom, so that a large file that the site host streams from disk goes
// out by sendfile, as it would through net/http.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_, haveType := w.hdr["Content-Type"]
	rf, ok := w.c.rwc.(io.ReaderFrom)
	if !ok || w.head || w.chunked || w.declared < 0 || !haveType || !bodyAllowed(w.status) {
		return io.Copy(writerOnly{w}, src)
	}
	if !w.sent {
		w.endHeader(nil, -1)
	}
	if err := w.c.flush(); err != nil {
		w.closeAfter = true
		return 0, err
	}
	w.mark = 0
	// One LimitedReader around the file, not two, or the connection
	// cannot see the file to sendfile it (http.ServeContent passes one).
	lr := &io.LimitedReader{R: src, N: w.declared - w.written}
	if in, ok := src.(*io.LimitedReader); ok {
		lr.R, lr.N = in.R, min(in.N, lr.N)
	}
	n, err := w.c.wr.readFrom(rf, lr)
	if in, ok := src.(*io.LimitedReader); ok {
		in.N -= n
	}
	w.written += n
	if err != nil {
		w.closeAfter = true
	}
	return n, err
}

// writerOnly hides ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// append adds body bytes to the output. Large ones go straight to the
// connection after what is pending, in one writev, rather than being
// copied: sites' scripts and images are tens of kilobytes.
func (w *response) append(p []byte) {
	c := w.c
	if len(p) < copyMax {
		c.out = append(c.buffer(), p...)
		return
	}
	err := c.wr.writeBuffers(net.Buffers{c.buffer(), p})
	c.out = c.out[:0]
	w.mark = 0
	if err != nil {
		w.closeAfter = true
	}
}

func (w *response) appendChunk(p []byte) {
	w.c.out = append(strconv.AppendInt(w.c.buffer(), int64(len(p)), 16), "\r\n"...)
	w.append(p)
	w.c.out = append(w.c.buffer(), "\r\n"...)
}

// finish completes the response after the handler returns.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.c.out = append(w.c.buffer(), "0\r\n\r\n"...)
		return !w.closeAfter
	}
	if !w.sent {
		if w.declared >= 0 {
			w.endHeader(w.body, -1)
		} else {
			// The whole body is at hand: its length is known.
			n := w.written
			if !bodyAllowed(w.status) || w.head && (n == 0 || n > maxHeld) {
				n = -1
			}
			w.endHeader(w.body, n)
			if !w.head {
				w.append(w.body)
			}
		}
	}
	if w.declared >= 0 && !w.head && bodyAllowed(w.status) && w.written != w.declared {
		// The client waits for bytes that will not come: close, as
		// net/http does.
		return false
	}
	return !w.closeAfter
}

// startHeader puts the status line and the handler's fields in c.out.
// Like net/http, which copies them at WriteHeader, it ignores changes made
// after. endHeader adds what depends on the body.
func (w *response) startHeader() {
	b := appendStatusLine(w.c.buffer(), w.status)
	h := w.hdr
	if bodyAllowed(w.status) {
		_, haveType := h["Content-Type"]
		ce := h["Content-Encoding"]
		w.sniff = !haveType && (len(ce) == 0 || ce[0] == "")
	}
	_, w.dated = h["Date"]
	w.keys = w.keys[:0]
	for k := range h {
		if suppressed(w.status, k) || k == "Connection" && w.closeAfter {
			continue
		}
		w.keys = append(w.keys, k)
	}
	slices.Sort(w.keys)
	for _, k := range w.keys {
		if !validKey(k) {
			continue
		}
		for _, v := range h[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	w.c.out = b
}

// endHeader completes the header: Date, then, for a body the handler gave
// no length or type, contentLength (when not negative) and the type sniffed
// from first, its start.
func (w *response) endHeader(first []byte, contentLength int64) {
	w.sent = true
	b := w.c.buffer()
	if !w.dated {
		b = appendDate(b, time.Now())
	}
	if contentLength >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, contentLength, 10)
		b = append(b, "\r\n"...)
	}
	if w.sniff && len(first) > 0 {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(first)...)
		b = append(b, "\r\n"...)
	}
	if w.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	w.c.out = append(b, "\r\n"...)
}

// writeInterim sends a 1xx response ahead of the final one.
func (w *response) writeInterim(code int) {
	b := appendStatusLine(w.c.buffer(), code)
	w.keys = w.keys[:0]
	for k := range w.hdr {
		w.keys = append(w.keys, k)
	}
	slices.Sort(w.keys)
	for _, k := range w.keys {
		if !validKey(k) || k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range w.hdr[k] {
			b = append(append(append(append(b, k...), ": "...), appendValue(nil, v)...), "\r\n"...)
		}
	}
	w.c.out = append(b, "\r\n"...)
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified)
}

// suppressed reports the header fields net/http drops for a status that
// has no body.
func suppressed(status int, key string) bool {
	switch {
	case status == http.StatusNotModified:
		return key == "Content-Type" || key == "Content-Length" || key == "Transfer-Encoding"
	case !bodyAllowed(status):
		return key == "Content-Length" || key == "Transfer-Encoding"
	}
	return false
}

var statusLines = func() map[int]string {
	m := map[int]string{}
	for code := 100; code < 600; code++ {
		if t := http.StatusText(code); t != "" {
			m[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + t + "\r\n"
		}
	}
	return m
}()

func appendStatusLine(b []byte, code int) []byte {
	if l, ok := statusLines[code]; ok {
		return append(b, l...)
	}
	return fmt.Appendf(b, "HTTP/1.1 %03d status code %d\r\n", code, code)
}

// appendValue writes a field value as net/http does: line breaks become
// spaces and surrounding white space goes.
func appendValue(b []byte, v string) []byte {
	if v != "" && (isSpace(v[0]) || isSpace(v[len(v)-1])) {
		v = strings.Trim(v, " \t\r\n")
	}
	start := len(b)
	b = append(b, v...)
	for i := start; i < len(b); i++ {
		if b[i] == '\r' || b[i] == '\n' {
			b[i] = ' '
		}
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if class[k[i]]&cToken == 0 {
			return false
		}
	}
	return true
}

func hasToken(v, token string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

// dateLine is the Date field for one second, made once for all responses
// of that second.
type dateLine struct {
	sec  int64
	line []byte
}

var date atomic.Pointer[dateLine]

func appendDate(b []byte, now time.Time) []byte {
	d := date.Load()
	if sec := now.Unix(); d == nil || d.sec != sec {
		line := now.UTC().AppendFormat([]byte("Date: "), http.TimeFormat)
		d = &dateLine{sec: sec, line: append(line, "\r\n"...)}
		date.Store(d)
	}
	return append(b, d.line...)
}
