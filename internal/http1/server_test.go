package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/http1/wiretest"
)

// testHandler answers by path, covering what a handler may do with a
// ResponseWriter. /echo describes the request as the handler saw it.
func testHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintf(w, "%s %q host=%q path=%q rawpath=%q query=%q force=%v proto=%s body=%v cl=%d\n", r.Method, r.RequestURI,
			r.Host, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.ForceQuery, r.Proto, r.Body != nil, r.ContentLength)
		for _, k := range keys {
			fmt.Fprintf(w, "%s=%q\n", k, r.Header[k])
		}
		if r.Context().Value(http.LocalAddrContextKey) == nil {
			fmt.Fprintln(w, "no local address in the context")
		}
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/html; charset=utf-8"}
		w.Header()["Content-Length"] = []string{"5"}
		w.Header()["Etag"] = []string{`"abc"`}
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/nolength", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "no length given")
		io.WriteString(w, ", two writes")
	})
	mux.HandleFunc("/sniff", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!DOCTYPE html><html><body>sniffed</body></html>")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/small")
		w.WriteHeader(http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Etag", `"abc"`)
		w.WriteHeader(http.StatusNotModified)
		if _, err := w.Write([]byte("body")); !errors.Is(err, http.ErrBodyNotAllowed) {
			panic(fmt.Sprintf("write after 304: %v", err))
		}
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(largeBody)))
		w.Write(largeBody[:1000])
		w.Write(largeBody[1000:])
	})
	mux.HandleFunc("/large-nolength", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for i := 0; i < len(largeBody); i += 7000 {
			w.Write(largeBody[i:min(i+7000, len(largeBody))])
		}
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(largeFile)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(largeBody)))
		w.WriteHeader(http.StatusOK)
		if n, err := io.Copy(w, f); n != int64(len(largeBody)) || err != nil {
			panic(fmt.Sprintf("copied %d bytes: %v", n, err))
		}
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	})
	mux.HandleFunc("/toolong", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		if _, err := io.WriteString(w, "12345"); !errors.Is(err, http.ErrContentLength) {
			panic(fmt.Sprintf("overlong write: %v", err))
		}
		io.WriteString(w, "123")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Injected"] = []string{"a\r\nSet-Cookie: evil=1", "  padded\t"}
		h["Bad Name"] = []string{"dropped"}
		h["X-Multi"] = []string{"1", "2"}
		h["Date"] = []string{"Mon, 02 Jan 2006 15:04:05 GMT"}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Early", "sent")
		w.WriteHeader(http.StatusAccepted)
		w.Header().Set("X-Late", "not sent")
		w.Header().Del("X-Early")
		io.WriteString(w, "late fields")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(599)
		io.WriteString(w, "odd status")
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "half a response")
		panic(http.ErrAbortHandler)
	})
	return mux
}

var largeBody = bytes.Repeat([]byte("0123456789abcdef"), 9000) // 144,000 bytes

// largeFile holds largeBody, for a handler that copies a file as the site
// host does for files too large for its cache.
var largeFile string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "http1-test-")
	if err != nil {
		panic(err)
	}
	largeFile = filepath.Join(dir, "large.bin")
	if err := os.WriteFile(largeFile, largeBody, 0o644); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startPair serves h from a net/http server and from a Server in front of
// one, both on loopback, and returns their addresses.
func startPair(t *testing.T, h http.Handler, fast func(*http.Request) bool) (plain, front string, srv *Server) {
	t.Helper()
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: quietLog()}
	go hs.Serve(pl)
	t.Cleanup(func() { hs.Close() })

	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = &Server{HTTP: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: quietLog()}, Fast: fast}
	go srv.Serve(fl)
	t.Cleanup(func() { srv.Close() })
	return pl.Addr().String(), fl.Addr().String(), srv
}

// exchange sends raw on a new connection, half-closes it, and returns the
// responses read until the server closes, described by wiretest.
func exchange(t *testing.T, addr, raw string) []string {
	t.Helper()
	resps, err := wiretest.Exchange(addr, raw, requestMethods(raw)...)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range resps {
		out = append(out, r.Text)
	}
	return out
}

// requestMethods guesses each pipelined request's method, which reading a
// response needs (HEAD has no body).
func requestMethods(raw string) []string {
	var m []string
	for _, line := range strings.Split(raw, "\n") {
		for _, meth := range []string{"GET ", "HEAD ", "POST ", "PUT ", "OPTIONS ", "BREW "} {
			if strings.HasPrefix(line, meth) {
				m = append(m, strings.TrimSpace(meth))
			}
		}
	}
	return append(m, "GET", "GET") // for error responses to garbage
}

func get(path string, headers ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: example.test\r\n" + strings.Join(headers, "") + "\r\n"
}

// TestSameAsNetHTTP sends the same bytes to net/http and to the fast loop
// in front of it and requires the same responses, field for field.
func TestSameAsNetHTTP(t *testing.T) {
	plain, front, _ := startPair(t, testHandler(), func(*http.Request) bool { return true })
	post := "POST /echo HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello"
	cases := map[string]string{
		"simple":              get("/small"),
		"head":                "HEAD /small HTTP/1.1\r\nHost: example.test\r\n\r\n",
		"head without length": "HEAD /nolength HTTP/1.1\r\nHost: example.test\r\n\r\n",
		"head sniffed":        "HEAD /sniff HTTP/1.1\r\nHost: example.test\r\n\r\n",
		"echo headers": get("/echo?a=1&b=two", "accept-encoding: gzip, br\r\n", "X-Two: 1\r\n", "x-two:  2 \t\r\n",
			"User-Agent: test\r\n", "Cookie: a=b\r\n", "Pragma: no-cache\r\n", "Connection: keep-alive\r\n", "SEC-fetch-mode: navigate\r\n"),
		"echo empty query":     get("/echo?"),
		"echo double query":    get("/echo??x"),
		"echo query chars":     get("/echo?q=%41!'()*&r=/?x"),
		"echo path chars":      get("/echo/a-b_c.d~e$f&g+h,i;j=k:l@m"),
		"echo percent":         get("/echo/a%20b"),
		"echo dot segment":     get("/echo/../echo"),
		"echo double slash":    get("//echo"),
		"echo bang":            get("/echo!"),
		"echo head host case":  "GET /echo HTTP/1.1\r\nhOsT: Example.TEST:8080\r\n\r\n",
		"echo no host":         "GET /echo HTTP/1.1\r\n\r\n",
		"echo two hosts":       "GET /echo HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
		"echo empty host":      "GET /echo HTTP/1.1\r\nHost:\r\n\r\n",
		"echo bad host":        "GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n",
		"echo http10":          "GET /echo HTTP/1.0\r\nHost: example.test\r\n\r\n",
		"echo absolute":        "GET http://example.test/echo HTTP/1.1\r\nHost: example.test\r\n\r\n",
		"echo bare lf":         "GET /echo HTTP/1.1\nHost: example.test\n\n",
		"echo obs fold":        "GET /echo HTTP/1.1\r\nHost: example.test\r\nX-A: 1\r\n 2\r\n\r\n",
		"echo space colon":     "GET /echo HTTP/1.1\r\nHost: example.test\r\nX-A : 1\r\n\r\n",
		"echo ctl in value":    "GET /echo HTTP/1.1\r\nHost: example.test\r\nX-A: 1\x012\r\n\r\n",
		"echo cl zero":         get("/echo", "Content-Length: 0\r\n"),
		"echo expect":          get("/echo", "Expect: 100-continue\r\n", "Content-Length: 3\r\n") + "abc",
		"echo upgrade":         get("/echo", "Connection: Upgrade\r\n", "Upgrade: websocket\r\n"),
		"echo chunked get":     get("/echo", "Transfer-Encoding: chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n",
		"echo big cookie":      get("/echo", "Cookie: "+strings.Repeat("c", 6000)+"\r\n"),
		"connection close":     get("/small", "Connection: close\r\n") + get("/small"),
		"post then get":        post + get("/small"),
		"get then post":        get("/small") + post + get("/echo"),
		"pipelined":            get("/small") + get("/nolength") + "HEAD /small HTTP/1.1\r\nHost: example.test\r\n\r\n" + get("/empty"),
		"garbage":              "HELLO\r\n\r\n",
		"unknown method":       "BREW /echo HTTP/1.1\r\nHost: example.test\r\n\r\n",
		"garbage after get":    get("/small") + "NONSENSE\r\n\r\n",
		"lowercase method":     "get /small HTTP/1.1\r\nHost: example.test\r\n\r\n",
		"two spaces":           "GET  /small HTTP/1.1\r\nHost: example.test\r\n\r\n",
		"nolength":             get("/nolength"),
		"sniff":                get("/sniff"),
		"empty":                get("/empty"),
		"redirect":             get("/redirect"),
		"not modified":         get("/notmodified") + get("/small"),
		"no content":           get("/nocontent") + get("/small"),
		"large":                get("/large") + get("/small"),
		"large without length": get("/large-nolength") + get("/small"),
		"file":                 get("/small") + get("/file") + get("/small"),
		"head file":            "HEAD /file HTTP/1.1\r\nHost: example.test\r\n\r\n" + get("/small"),
		"head large":           "HEAD /large-nolength HTTP/1.1\r\nHost: example.test\r\n\r\n" + get("/small"),
		"short body":           get("/short") + get("/small"),
		"overlong write":       get("/toolong") + get("/small"),
		"handler closes":       get("/close") + get("/small"),
		"header values":        get("/headers"),
		"odd status":           get("/status"),
		"fields after status":  get("/late") + "HEAD /late HTTP/1.1\r\nHost: example.test\r\n\r\n",
		"not found":            get("/nothing"),
		"incomplete":           "GET /small HTTP/1.1\r\nHost: exa",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			want := exchange(t, plain, raw)
			got := exchange(t, front, raw)
			if len(want) == 0 && !strings.Contains(name, "incomplete") {
				t.Fatalf("net/http sent nothing: the case tests nothing")
			}
			if !slices.Equal(got, want) {
				t.Errorf("responses differ\nnet/http:\n%s\nfast loop:\n%s", strings.Join(want, "\n--\n"), strings.Join(got, "\n--\n"))
			}
		})
	}
}

// TestPanicDropsHalfResponse: a handler that panics after writing gets no
// partial response out, and earlier pipelined responses still arrive.
func TestPanicDropsHalfResponse(t *testing.T) {
	_, front, _ := startPair(t, testHandler(), func(*http.Request) bool { return true })
	got := exchange(t, front, get("/small")+get("/panic")+get("/small"))
	if len(got) != 1 || !strings.HasPrefix(got[0], "200 OK") || !strings.Contains(got[0], `"hello"`) {
		t.Fatalf("got %q, want exactly the first response", got)
	}
}

// TestFastDeclines: requests Fast declines go to net/http, which then keeps
// the connection.
func TestFastDeclines(t *testing.T) {
	var fastSeen []string
	fast := func(r *http.Request) bool {
		fastSeen = append(fastSeen, r.URL.Path)
		return r.URL.Path != "/echo"
	}
	h := testHandler()
	viaNetHTTP := 0
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*response); !ok {
			viaNetHTTP++
		}
		h.ServeHTTP(w, r)
	})
	_, front, _ := startPair(t, wrapped, fast)
	got := exchange(t, front, get("/small")+get("/echo")+get("/small"))
	if len(got) != 3 {
		t.Fatalf("got %d responses, want 3: %q", len(got), got)
	}
	if !slices.Equal(fastSeen, []string{"/small", "/echo"}) {
		t.Errorf("Fast was asked about %q, want /small then /echo (then net/http owns the connection)", fastSeen)
	}
	if viaNetHTTP != 2 {
		t.Errorf("net/http served %d requests, want 2 (/echo and the one after)", viaNetHTTP)
	}
}

func TestDisabled(t *testing.T) {
	h := testHandler()
	viaFast := 0
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*response); ok {
			viaFast++
		}
		h.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{HTTP: &http.Server{Handler: wrapped}, Fast: func(*http.Request) bool { return true }, Disabled: true}
	go srv.Serve(ln)
	defer srv.Close()
	if got := exchange(t, ln.Addr().String(), get("/small")+get("/small")); len(got) != 2 {
		t.Fatalf("got %q", got)
	}
	if viaFast != 0 {
		t.Errorf("%d requests took the fast loop with Disabled set", viaFast)
	}
}

// TestTimeouts: a connection idle past IdleTimeout, or sending a head
// slower than ReadHeaderTimeout, is closed.
func TestTimeouts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{
		HTTP: &http.Server{Handler: testHandler(), ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 600 * time.Millisecond},
		Fast: func(*http.Request) bool { return true },
	}
	go srv.Serve(ln)
	defer srv.Close()

	tests := []struct {
		name   string
		send   string
		then   string // sent after the first response
		minDur time.Duration
		maxDur time.Duration
	}{
		{"idle after a response", get("/small"), "", 550 * time.Millisecond, 3 * time.Second},
		{"slow first head", "GET /small HTTP/1.1\r\nHo", "", 250 * time.Millisecond, 2 * time.Second},
		{"slow second head", get("/small"), "GET /small HTTP/1.1\r\nHo", 250 * time.Millisecond, 550 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.send)
			br := bufio.NewReader(c)
			if strings.HasSuffix(tt.send, "\r\n\r\n") {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
			}
			start := time.Now()
			if tt.then != "" {
				io.WriteString(c, tt.then)
			}
			n, err := br.Read(make([]byte, 1))
			waited := time.Since(start)
			if n != 0 || err == nil {
				t.Fatalf("read %d bytes, err %v: want the connection closed", n, err)
			}
			if waited < tt.minDur || waited > tt.maxDur {
				t.Errorf("closed after %v, want between %v and %v", waited, tt.minDur, tt.maxDur)
			}
		})
	}
}

// TestShutdown: idle connections close at once; a request in progress
// finishes, with Connection: close; Shutdown returns once both are done.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	h := testHandler()
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		h.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{HTTP: &http.Server{Handler: wrapped}, Fast: func(*http.Request) bool { return true }}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(idle, get("/small"))
	idleR := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleR, nil); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}

	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(busy, get("/slow"))
	<-started

	shutDone := make(chan error, 1)
	go func() { shutDone <- srv.Shutdown(context.Background()) }()

	if n, err := idleR.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("idle connection: read %d bytes, err %v; want it closed", n, err)
	}
	select {
	case err := <-shutDone:
		t.Fatalf("Shutdown returned (%v) while a request was in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("request in progress: %v", err)
	}
	if resp.StatusCode != 404 || !resp.Close {
		t.Errorf("in-progress response: status %d close %v, want 404 and Connection: close", resp.StatusCode, resp.Close)
	}
	if err := <-shutDone; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-serveDone; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("listener still accepts after Shutdown")
	}
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// TestHeadLimit: a head over HTTP.MaxHeaderBytes is never served by the fast
// loop, even when its 4 KiB buffer holds it, so both paths keep one limit
// and net/http answers 431 past it (issue 8).
func TestHeadLimit(t *testing.T) {
	h := testHandler()
	var viaFast, viaNetHTTP atomic.Int64
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*response); ok {
			viaFast.Add(1)
		} else {
			viaNetHTTP.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 10
	srv := &Server{HTTP: &http.Server{Handler: wrapped, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: limit, ErrorLog: quietLog()},
		Fast: func(*http.Request) bool { return true }}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tests := []struct {
		name               string
		filler             int
		status             string
		wantFast, wantSlow int64
	}{
		{"small head: fast loop", 100, "200 OK", 1, 0},
		{"over the limit, within the buffer: net/http", 2 << 10, "200 OK", 0, 1},
		// net/http allows 4096 bytes over MaxHeaderBytes for the request line.
		{"over net/http's limit: 431", limit + 8<<10, "431 ", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast0, slow0 := viaFast.Load(), viaNetHTTP.Load()
			got := exchange(t, ln.Addr().String(), get("/small", "X-Filler: "+strings.Repeat("f", tt.filler)+"\r\n"))
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.status) {
				t.Fatalf("got %.200q, want one %s", got, tt.status)
			}
			if f, s := viaFast.Load()-fast0, viaNetHTTP.Load()-slow0; f != tt.wantFast || s != tt.wantSlow {
				t.Errorf("served %d by the fast loop and %d by net/http, want %d and %d", f, s, tt.wantFast, tt.wantSlow)
			}
		})
	}
}
