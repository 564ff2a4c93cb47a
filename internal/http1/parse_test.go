package http1

import (
	"bufio"
	"bytes"
	"maps"
	"net/http"
	"slices"
	"testing"
)

func TestParseDecides(t *testing.T) {
	tests := []struct {
		name string
		head string
		want bool
	}{
		{"get", "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", true},
		{"head with fields", "HEAD /x.js?v=1 HTTP/1.1\r\nHost: a.test:8080\r\nAccept-Encoding: br\r\n\r\n", true},
		{"keep-alive", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n", true},
		{"post", "POST / HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"http/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", false},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false},
		{"no host", "GET / HTTP/1.1\r\n\r\n", false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", false},
		{"content-length", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", false},
		{"transfer-encoding", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"connection close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
		{"upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n", false},
		{"percent", "GET /a%2e HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"dot segment", "GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"double slash", "GET //a HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"absolute form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"asterisk", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", false},
		{"bare lf", "GET / HTTP/1.1\nHost: a\n\n", false},
		{"cr in value", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n", false},
		{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n", false},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", false},
		{"host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", false},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := headEnd([]byte(tt.head))
			got := n > 0 && newRequest().parse([]byte(tt.head[:n]))
			if got != tt.want {
				t.Errorf("parse = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzParse checks that a request this package serves reads the same to
// net/http: same method, target, host, URL and fields, no body, and the
// head ends where net/http's does. A reused request (as on a keep-alive
// connection) must give the same result as a fresh one.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"HEAD /x.js?v=1 HTTP/1.1\r\nHost: a.test:8080\r\nAccept-Encoding: gzip, br\r\nAccept-Encoding: zstd\r\n\r\n",
		"GET /a?b?c HTTP/1.1\r\nhost: A\r\nConnection: keep-alive\r\nPragma: no-cache\r\nx-y:  z \r\n\r\n",
		"GET /? HTTP/1.1\r\nHost: [::1]:80\r\nCookie: a=b; c=d\r\nSec-Fetch-Mode: navigate\r\n\r\n",
		"GET /a/b;c=d HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\", W/\"y\"\r\n\r\nGET / HTTP/1.1\r\n",
	} {
		f.Add([]byte(s))
	}
	warm := []byte("GET /warm?x HTTP/1.1\r\nHost: warm\r\nAccept-Encoding: gzip, br\r\nX-Y: z\r\n\r\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		n := headEnd(b)
		if n == 0 {
			return
		}
		fresh := newRequest()
		if !fresh.parse(b[:n]) {
			return
		}
		br := bufio.NewReader(bytes.NewReader(b[:n]))
		want, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("served here, but net/http refuses it: %v", err)
		}
		if br.Buffered() != 0 {
			t.Fatalf("the head ends at %d here, but net/http left %d bytes of it", n, br.Buffered())
		}
		if want.ContentLength != 0 || len(want.TransferEncoding) != 0 || want.Close {
			t.Fatalf("net/http sees a body or a close: length %d, encoding %v, close %v", want.ContentLength,
				want.TransferEncoding, want.Close)
		}
		reused := newRequest()
		if !reused.parse(warm) {
			t.Fatal("warm-up request refused")
		}
		if !reused.parse(b[:n]) {
			t.Fatal("served on a fresh connection but not on a used one")
		}
		for _, r := range []*http.Request{&fresh.req, &reused.req} {
			if r.Method != want.Method || r.RequestURI != want.RequestURI || r.Host != want.Host ||
				r.Proto != want.Proto || r.URL.String() != want.URL.String() || r.URL.Path != want.URL.Path ||
				r.URL.RawPath != want.URL.RawPath || r.URL.RawQuery != want.URL.RawQuery || r.URL.ForceQuery != want.URL.ForceQuery {
				t.Fatalf("request differs:\nhere     %s %q host %q url %#v\nnet/http %s %q host %q url %#v",
					r.Method, r.RequestURI, r.Host, *r.URL, want.Method, want.RequestURI, want.Host, *want.URL)
			}
			if !maps.EqualFunc(r.Header, want.Header, slices.Equal) {
				t.Fatalf("fields differ:\nhere     %q\nnet/http %q", r.Header, want.Header)
			}
		}
	})
}
