package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

const maxRequestIDLen = 128

// validRequestID accepts ids a proxy or client may have assigned, as long as
// they cannot forge log lines or headers.
func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails on Linux; a zero id would still be usable
	return hex.EncodeToString(b[:])
}

// recorder remembers what was sent, for the access log and so that a panic
// after the header went out does not try to send a second one.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// SetReadDeadline is what Huma looks for to apply an operation's body read
// timeout; net/http's own writer only offers it through ResponseController.
func (r *recorder) SetReadDeadline(t time.Time) error {
	return http.NewResponseController(r.ResponseWriter).SetReadDeadline(t)
}

func (r *recorder) Flush() {
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// observe gives every response a request id, logs one line per request and
// turns a panic into a 500 in the unified format.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		log := s.log.With("request_id", id)
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		ctx = context.WithValue(ctx, keyLogger, log)
		r = r.WithContext(ctx)
		rec := &recorder{ResponseWriter: w}

		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic serving request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeError(rec, newError(http.StatusInternalServerError, libra.CodeInternal, internalMessage, nil))
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			// Only the path: query strings may carry values that are not ours
			// to log, and headers (Authorization, Cookie) never are.
			log.LogAttrs(r.Context(), level, "http request",
				slog.String("method", r.Method),
				slog.String("path", truncate(r.URL.Path, 256)),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.Int64("bytes", rec.bytes),
				slog.String("remote", r.RemoteAddr),
			)
		}()
		next.ServeHTTP(rec, r)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// limitBody rejects a declared body over the limit before anything reads it,
// so an over-large upload costs neither memory nor a token lookup. Bodies
// without a length are cut off by Huma while it reads them.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > libra.MaxBodyBytes {
			// Tell net/http not to wait for the rest of the body.
			w.Header().Set("Connection", "close")
			writeError(w, newError(http.StatusRequestEntityTooLarge, libra.CodePayloadTooLarge, bodyTooLargeMessage,
				map[string]any{"limitBytes": libra.MaxBodyBytes, "contentLength": r.ContentLength}))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// routeErrors puts the router's own 404 and 405 answers into the unified
// format; everything that matches a route goes to the mux unchanged.
func routeErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// No route: the mux's handler only says whether the path exists
		// with other methods (405 and Allow) or not at all (404).
		probe := &probeWriter{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeError(w, newError(http.StatusMethodNotAllowed, libra.CodeMethodNotAllowed,
				fmt.Sprintf("%s is not allowed on %s", r.Method, truncate(r.URL.Path, 256)),
				map[string]any{"allow": probe.header.Get("Allow")}))
		case http.StatusNotFound:
			writeError(w, newError(http.StatusNotFound, libra.CodeNotFound, "no such route: "+r.Method+" "+truncate(r.URL.Path, 256), nil))
		default:
			// Redirects to a cleaned path and the like: pass through.
			for k, v := range probe.header {
				w.Header()[k] = v
			}
			w.WriteHeader(probe.status)
		}
	})
}

type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

// exactRoot keeps Huma's "GET /" route from being the net/http catch-all
// that "/" means in a ServeMux pattern.
type exactRoot struct{ *http.ServeMux }

func (m exactRoot) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	if len(pattern) > 0 && pattern[len(pattern)-1] == '/' {
		pattern += "{$}"
	}
	m.ServeMux.HandleFunc(pattern, h)
}
