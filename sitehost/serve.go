package sitehost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
)

// ServeHTTP serves the site that the request's host name addresses.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr[headerNosniff] = nosniff
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr[headerAllow] = allowGetHead
		plainError(w, r, http.StatusMethodNotAllowed, "method not allowed", cacheNoStore)
		return
	}
	s, err := h.lookup(r.Context(), r.Host)
	if err != nil {
		if r.Context().Err() == nil {
			h.log.Error("site lookup failed", "host", r.Host, "error", err)
		}
		plainError(w, r, http.StatusServiceUnavailable, "site temporarily unavailable", cacheNoStore)
		return
	}
	if s == nil {
		plainError(w, r, http.StatusNotFound, "no site is published at this address", cacheNoStore)
		return
	}
	h.serveSite(w, r, s)
}

func (h *Host) serveSite(w http.ResponseWriter, r *http.Request, s *site) {
	p := r.URL.Path
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if !isClean(p) {
		p = cleanPath(p)
	}
	key := p[1:]
	f := s.routes[key]

	if s.redirects != nil {
		if rule, vals := s.redirects.match(p, f != nil); rule != nil {
			if !rule.rewrite() {
				w.Header()[headerLocation] = []string{rule.location(vals, r.URL.RawQuery)}
				w.WriteHeader(rule.status)
				return
			}
			t := rule.target(vals)
			if !isClean(t) {
				t = cleanPath(t)
			}
			if tf := s.routes[t[1:]]; tf != nil {
				h.serveFile(w, r, s, p, tf, rule.status)
				return
			}
			// A rewrite to nothing falls through, to the file or the 404.
		}
	}
	if f != nil {
		h.serveFile(w, r, s, p, f, http.StatusOK)
		return
	}
	h.notFound(w, r, s, p, key)
}

func (h *Host) notFound(w http.ResponseWriter, r *http.Request, s *site, p, key string) {
	noExt := path.Ext(key) == ""
	switch s.notFound {
	case notFoundSPA:
		// A missing script or image gets a real 404, not HTML under its
		// name, unless the browser is navigating to it.
		if s.index != nil && (noExt || strings.HasSuffix(key, ".html") || r.Header.Get(headerFetchMode) == "navigate") {
			h.serveFile(w, r, s, p, s.index, http.StatusOK)
			return
		}
	case notFound404Page:
		if f := s.nearest404(key); f != nil {
			h.serveFile(w, r, s, p, f, http.StatusNotFound)
			return
		}
	case notFoundAuto:
		if f := s.nearest404(key); f != nil {
			h.serveFile(w, r, s, p, f, http.StatusNotFound)
			return
		}
		if s.index != nil && noExt {
			h.serveFile(w, r, s, p, s.index, http.StatusOK)
			return
		}
	}
	if s.headers != nil {
		if hs := s.headersFor(p, nil); hs != nil {
			hs.apply(w.Header())
		}
	}
	plainError(w, r, http.StatusNotFound, "404 page not found", cacheNoCache)
}

// serveFile writes f as the response for request path p, with status 200,
// or 404 for an error page.
func (h *Host) serveFile(w http.ResponseWriter, r *http.Request, s *site, p string, f *file, status int) {
	hdr := w.Header()
	hdr[headerCType] = f.contentType
	if status == http.StatusOK {
		hdr[headerCacheCtl] = f.cacheControl
		hdr[headerLastMod] = s.lastModified
	} else {
		hdr[headerCacheCtl] = cacheNoCache
	}
	// rep is the representation sent: f itself, or a variant compressed at
	// deploy time that the client accepts.
	rep := f
	legacyGzip := false
	if f.vary {
		hdr[headerVary] = varyEncoding
		if ae := r.Header[headerAcceptEnc]; len(ae) > 0 {
			br, gz := acceptedEncodings(ae)
			switch {
			case f.gzip:
				legacyGzip = gz
			case br && f.br.usable():
				rep = f.br
			case gz && f.gz.usable():
				rep = f.gz
			}
		}
	}
	etag := rep.etag
	if legacyGzip {
		etag = f.etagGzip
	}
	if status == http.StatusOK {
		hdr[headerETag] = etag
	}
	if s.headers != nil {
		// The file's own path counts too: "/secret" serves secret.html,
		// and so do a rewrite, the SPA fallback and a 404.html page.
		if hs := s.headersFor(p, f); hs != nil {
			hs.apply(hdr)
		}
	}

	if status == http.StatusOK {
		if inm := r.Header[headerINM]; len(inm) > 0 {
			if etagMatches(inm, f) {
				notModified(w)
				return
			}
		} else if ims := r.Header[headerIMS]; len(ims) > 0 {
			if t, err := http.ParseTime(ims[0]); err == nil && !s.modTime.After(t) {
				notModified(w)
				return
			}
		}
		// Ranges and the rarer preconditions go to the standard library,
		// which implements them fully; they are not the hot path.
		if len(r.Header[headerRange]) > 0 || len(r.Header[headerIfMatch]) > 0 || len(r.Header[headerIUS]) > 0 {
			hdr[headerETag] = f.etag
			delete(hdr, headerCEncoding)
			h.serveContent(w, r, s, f)
			return
		}
	}

	b, err := h.blobs.get(r.Context(), rep)
	if err != nil && rep != f && r.Context().Err() == nil {
		// A variant that cannot be read fails no request: the file itself
		// is what the manifest is about.
		h.log.Warn("compressed variant unavailable, sending the file itself", "deployment", s.deploymentID,
			"path", f.path, "digest", rep.digest, "error", err)
		if errors.Is(err, libra.ErrNotFound) || errors.Is(err, errBlobMismatch) {
			// Lost or damaged for good: not tried again while the site
			// stays loaded.
			rep.broken.Store(true)
		}
		rep = f
		if status == http.StatusOK {
			hdr[headerETag] = f.etag
		}
		b, err = h.blobs.get(r.Context(), f)
	}
	if err != nil {
		h.contentError(w, r, s, rep, err)
		return
	}
	if b == nil {
		h.streamFile(w, r, s, rep, status)
		return
	}
	body := b.data
	hdr[headerCLength] = rep.length
	if rep.encoding != nil {
		hdr[headerCEncoding] = rep.encoding
	}
	if legacyGzip {
		if gz := h.blobs.gzipped(b); gz != nil {
			body = gz
			hdr[headerCEncoding] = gzipEncoding
			hdr[headerCLength] = b.gzipLength
		} else if status == http.StatusOK {
			// Not worth compressing after all: the identity validator.
			hdr[headerETag] = f.etag
		}
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// notModified answers 304, keeping the validators and caching headers and
// dropping the description of a body that is not sent.
func notModified(w http.ResponseWriter) {
	hdr := w.Header()
	delete(hdr, headerCType)
	delete(hdr, headerCEncoding)
	delete(hdr, headerCLength)
	w.WriteHeader(http.StatusNotModified)
}

// serveContent hands ranges and preconditions to http.ServeContent.
func (h *Host) serveContent(w http.ResponseWriter, r *http.Request, s *site, f *file) {
	b, err := h.blobs.get(r.Context(), f)
	if err != nil {
		h.contentError(w, r, s, f, err)
		return
	}
	if b != nil {
		http.ServeContent(w, r, "", s.modTime, bytes.NewReader(b.data))
		return
	}
	rc, err := h.openFile(r.Context(), f)
	if err != nil {
		h.contentError(w, r, s, f, err)
		return
	}
	defer rc.Close()
	if rs, ok := rc.(io.ReadSeeker); ok {
		http.ServeContent(w, r, "", s.modTime, rs)
		return
	}
	// A store that cannot seek gets the whole body, which is a valid
	// answer to a range request.
	w.Header()[headerCLength] = f.length
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, rc)
	}
}

// streamFile sends a file (or a variant) too large for the memory cache.
func (h *Host) streamFile(w http.ResponseWriter, r *http.Request, s *site, f *file, status int) {
	hdr := w.Header()
	// Never compressed here: a variant is sent as stored, anything else as
	// it is.
	if f.encoding != nil {
		hdr[headerCEncoding] = f.encoding
	} else {
		delete(hdr, headerCEncoding)
	}
	if status == http.StatusOK {
		hdr[headerETag] = f.etag
	}
	hdr[headerCLength] = f.length
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	rc, err := h.openFile(r.Context(), f)
	if err != nil {
		delete(hdr, headerCLength)
		h.contentError(w, r, s, f, err)
		return
	}
	defer rc.Close()
	w.WriteHeader(status)
	// An *os.File here lets net/http use sendfile.
	if _, err := io.Copy(w, rc); err != nil && r.Context().Err() == nil {
		h.log.Warn("sending file failed", "deployment", s.deploymentID, "path", f.path, "error", err)
	}
}

func (h *Host) openFile(ctx context.Context, f *file) (io.ReadCloser, error) {
	if h.paths != nil {
		p, err := h.paths.Path(f.digest)
		if err != nil {
			return nil, err
		}
		return os.Open(p)
	}
	return h.artifacts.Open(ctx, f.digest)
}

func (h *Host) contentError(w http.ResponseWriter, r *http.Request, s *site, f *file, err error) {
	if r.Context().Err() != nil {
		return // the client left
	}
	h.log.Error("file content unavailable", "deployment", s.deploymentID, "path", f.path, "digest", f.digest, "error", err)
	hdr := w.Header()
	for _, k := range []string{headerETag, headerLastMod, headerCEncoding, headerVary} {
		delete(hdr, k)
	}
	if errors.Is(err, libra.ErrNotFound) || errors.Is(err, errBlobMismatch) {
		// The store lost or damaged a blob the manifest names: the
		// deployment is broken, and retrying will not help.
		plainError(w, r, http.StatusInternalServerError, "file content missing", cacheNoStore)
		return
	}
	plainError(w, r, http.StatusServiceUnavailable, "file temporarily unavailable", cacheNoStore)
}

func plainError(w http.ResponseWriter, r *http.Request, status int, msg string, cache []string) {
	hdr := w.Header()
	hdr[headerCType] = textPlain
	hdr[headerCacheCtl] = cache
	delete(hdr, headerCLength)
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, msg+"\n")
	}
}

// etagMatches applies If-None-Match's weak comparison against any of f's
// representations.
func etagMatches(values []string, f *file) bool {
	for _, v := range values {
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			if v == "" || v[0] != '"' {
				return false
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				return false
			}
			tag := v[:end+2]
			if f.hasETag(tag) {
				return true
			}
			v = v[end+2:]
		}
	}
	return false
}

// usable reports whether v, a variant or nil, may be sent.
func (v *file) usable() bool { return v != nil && !v.broken.Load() }

func (f *file) hasETag(tag string) bool {
	return tag == f.etag[0] ||
		f.etagGzip != nil && tag == f.etagGzip[0] ||
		f.gz != nil && tag == f.gz.etag[0] ||
		f.br != nil && tag == f.br.etag[0]
}

// acceptedEncodings reads Accept-Encoding: whether br and gzip are
// acceptable, by name or by "*", with a non-zero quality. Other qualities
// are not compared: br is smaller, so it is preferred whenever acceptable.
func acceptedEncodings(values []string) (br, gzip bool) {
	star, b, g := false, 0, 0 // 0 unmentioned, 1 accepted, -1 refused
	for _, v := range values {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			q := 1
			if qZero(params) {
				q = -1
			}
			switch {
			case strings.EqualFold(coding, "br"):
				b = q
			case strings.EqualFold(coding, "gzip") || strings.EqualFold(coding, "x-gzip"):
				g = q
			case coding == "*":
				star = q == 1
			}
		}
	}
	return b == 1 || b == 0 && star, g == 1 || g == 0 && star
}

func qZero(params string) bool {
	params = strings.TrimSpace(params)
	q, ok := strings.CutPrefix(params, "q=")
	if !ok {
		q, ok = strings.CutPrefix(params, "Q=")
	}
	if !ok {
		return false
	}
	q = strings.TrimRight(strings.TrimSpace(q), "0")
	return q == "0" || q == "0." || q == "" || q == "."
}

// isClean reports whether p (starting with '/') needs no path.Clean: no
// empty, "." or ".." segments.
func isClean(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		switch {
		case strings.HasPrefix(rest, "/"):
			return false
		case rest == "." || strings.HasPrefix(rest, "./"):
			return false
		case rest == ".." || strings.HasPrefix(rest, "../"):
			return false
		}
	}
	return len(p) > 0 && p[0] == '/'
}

// cleanPath cleans p, keeping a trailing slash, which selects index.html;
// a final "." or ".." names a directory too.
func cleanPath(p string) string {
	c := path.Clean("/" + p)
	if c != "/" && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")) {
		c += "/"
	}
	return c
}
