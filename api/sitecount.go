package api

import (
	"io"
	"net/http"

	"github.com/libra-deploy/libra-deploy/internal/http1"
)

// countSite serves a site request through h and reports its status and
// body bytes to served. The fast loop reports its own responses (without
// allocating), so those pass straight through; this counts what net/http
// serves: connections handed over, HTTPS.
func countSite(h http.Handler, served func(status int, bytes int64)) http.Handler {
	if served == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if http1.FastPath(w) {
			h.ServeHTTP(w, r)
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		if cw.status == 0 {
			cw.status = http.StatusOK
		}
		served(cw.status, cw.bytes)
	})
}

// countingWriter records the status and counts the body. ReadFrom keeps
// net/http's sendfile path for files; Unwrap lets http.ResponseController
// reach the connection's writer.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.bytes += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := io.Copy(c.ResponseWriter, src)
	c.bytes += n
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
