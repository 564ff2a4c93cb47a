package http1

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
)

// maxHead is the largest request head served here. A larger one (big
// cookies, say) goes to net/http, whose limit is HTTP.MaxHeaderBytes.
const maxHead = 4 << 10

// maxFields is the most header fields a request served here may have.
const maxFields = 64

// headEnd returns the length of the request head at the start of b,
// including its blank line, or 0 if b does not hold a whole head yet. A bare
// LF ends a head too, so that such a request reaches net/http (which
// accepts it) instead of waiting for a CRLF that never comes.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// request is the per-connection state for reading request heads into one
// reused http.Request without allocating for what repeats.
type request struct {
	req  http.Request
	url  url.URL
	hdr  http.Header
	prev http.Header       // the previous request's fields, whose values are reused
	keys map[string]string // field names as sent → canonical, beyond commonKeys
	// target and host keep the previous request's strings.
	target, host string
}

func newRequest() *request {
	r := &request{hdr: make(http.Header), prev: make(http.Header), keys: make(map[string]string)}
	r.req = http.Request{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody, URL: &r.url}
	return r
}

// parse reads head, a whole request head as headEnd found it, into r.req.
// It reports false, leaving r.req unusable, when the request is not one
// this package serves; net/http then reads it.
func (r *request) parse(head []byte) bool {
	line, rest, ok := cutCRLF(head)
	if !ok {
		return false
	}
	var method string
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		method, line = http.MethodHead, line[5:]
	default:
		return false
	}
	target, ok := bytes.CutSuffix(line, []byte(" HTTP/1.1"))
	if !ok || !validTarget(target) {
		return false
	}

	r.prev, r.hdr = r.hdr, r.prev
	clear(r.hdr)
	var host []byte
	hosts, fields := 0, 0
	for {
		line, rest, ok = cutCRLF(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			break
		}
		if fields++; fields > maxFields {
			return false
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validName(line[:colon]) {
			return false // includes obs-fold, which starts with a space
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validValue(value) {
			return false
		}
		key := r.canonical(name)
		switch key {
		case "Host":
			if hosts++; hosts > 1 || !validHost(value) {
				return false
			}
			host = value
			continue
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer", "Http2-Settings":
			// A body, or a protocol change: net/http's business.
			return false
		case "Connection":
			if !bytes.EqualFold(value, []byte("keep-alive")) {
				return false
			}
		}
		r.add(key, value)
	}
	if len(rest) != 0 || hosts != 1 {
		return false
	}
	// As net/http does: HTTP/1.0 caches' Pragma stands for Cache-Control.
	if p := r.hdr["Pragma"]; len(p) > 0 && p[0] == "no-cache" && r.hdr["Cache-Control"] == nil {
		r.hdr["Cache-Control"] = []string{"no-cache"}
	}

	if r.target != string(target) {
		r.target = string(target)
	}
	if r.host != string(host) {
		r.host = string(host)
	}
	p, q, hasQuery := cutByte(r.target, '?')
	r.url = url.URL{Path: p, RawQuery: q, ForceQuery: hasQuery && q == ""}
	r.req.Method = method
	r.req.RequestURI = r.target
	r.req.Host = r.host
	r.req.Header = r.hdr
	return true
}

// add appends a field value, reusing the previous request's string when the
// client sent the same value again (as clients do).
func (r *request) add(key string, value []byte) {
	if vs, ok := r.hdr[key]; ok {
		r.hdr[key] = append(vs, string(value))
		return
	}
	if pv := r.prev[key]; len(pv) == 1 && pv[0] == string(value) {
		r.hdr[key] = pv
		return
	}
	r.hdr[key] = []string{string(value)}
}

// canonical returns the canonical form of a field name without allocating
// for names seen before.
func (r *request) canonical(name []byte) string {
	if k, ok := commonKeys[string(name)]; ok {
		return k
	}
	if k, ok := r.keys[string(name)]; ok {
		return k
	}
	k := textproto.CanonicalMIMEHeaderKey(string(name))
	if len(r.keys) < 256 {
		r.keys[string(name)] = k
	}
	return k
}

// commonKeys maps the field names browsers, curl and load generators send,
// as they send them, to their canonical form.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Cache-Control", "Connection",
		"Cookie", "Dnt", "If-Modified-Since", "If-None-Match", "If-Range", "If-Match", "If-Unmodified-Since",
		"Pragma", "Priority", "Range", "Referer", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site",
		"Sec-Fetch-User", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Upgrade-Insecure-Requests",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Real-Ip", "Content-Length", "Transfer-Encoding",
		"Expect", "Upgrade", "Te", "Trailer", "Origin",
	} {
		m[k] = k
	}
	for _, k := range []string{"DNT", "User-agent", "Accept-encoding", "Accept-language", "Sec-CH-UA",
		"Sec-CH-UA-Mobile", "Sec-CH-UA-Platform", "X-Real-IP"} {
		m[k] = textproto.CanonicalMIMEHeaderKey(k)
	}
	return m
}()

func cutCRLF(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

func cutByte(s string, c byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// Character classes, one bit each.
const (
	cToken = 1 << iota // RFC 9110 tchar
	cPath              // path characters that url.URL keeps as they are
	cQuery             // query characters served here
	cHost              // host name characters served here
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if alnum || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), byte(c)) >= 0 {
			t[c] |= cToken
		}
		// Characters url.URL would escape in a path (such as '!' or '*')
		// would set RawPath; '%' needs decoding. Neither is served here.
		if alnum || bytes.IndexByte([]byte("-._~$&+,/:;=@"), byte(c)) >= 0 {
			t[c] |= cPath | cQuery
		}
		if bytes.IndexByte([]byte("?!'()*%"), byte(c)) >= 0 {
			t[c] |= cQuery
		}
		if alnum || bytes.IndexByte([]byte("-._:[]"), byte(c)) >= 0 {
			t[c] |= cHost
		}
	}
	return t
}()

// validTarget accepts an origin-form target whose path needs no decoding
// and no cleaning: no "//", "/." or "/..".
func validTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	inQuery := false
	for i, c := range t {
		if inQuery {
			if class[c]&cQuery == 0 {
				return false
			}
			continue
		}
		if c == '?' {
			inQuery = true
			continue
		}
		if class[c]&cPath == 0 {
			return false
		}
		if c == '/' && i+1 < len(t) && (t[i+1] == '/' || t[i+1] == '.') {
			return false
		}
	}
	return true
}

func validName(b []byte) bool {
	for _, c := range b {
		if class[c]&cToken == 0 {
			return false
		}
	}
	return true
}

// validValue refuses control characters other than tab, and DEL.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if class[c]&cHost == 0 {
			return false
		}
	}
	return true
}
