package http1

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const hugeSize = 32 << 20

// writeTimeoutHandler serves hugeSize bytes from a file (the sendfile path)
// and from memory in one Write (the buffered path), and largeBody as
// /file for pipelining.
func writeTimeoutHandler(t *testing.T) http.Handler {
	path := filepath.Join(t.TempDir(), "huge.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(hugeSize); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	huge := make([]byte, hugeSize)
	mux := http.NewServeMux()
	mux.Handle("/file", testHandler())
	mux.HandleFunc("/huge-file", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, path)
	})
	mux.HandleFunc("/huge-write", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "33554432")
		w.Write(huge)
	})
	return mux
}

func startWriteTimeoutServer(t *testing.T, h http.Handler, disabled bool, timeout time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{
		HTTP:         &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, ErrorLog: quietLog()},
		Fast:         func(*http.Request) bool { return true },
		Disabled:     disabled,
		WriteTimeout: timeout,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// dialSmall connects with a small receive buffer, so that a client that
// does not read stops the server's writes soon. The buffer is set before
// connecting: shrinking it later makes the kernel drop data it already
// allowed, and the retransmission back-off stalls the connection.
func dialSmall(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWriteTimeoutCutsStalledClients is issue 8, finding 10: a client that
// sends requests and never reads held its connection, and the responses
// queued for it, past every timeout. Both paths must now close it within
// about one WriteTimeout of its last read.
func TestWriteTimeoutCutsStalledClients(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := writeTimeoutHandler(t)
	tests := []struct {
		name     string
		disabled bool
		send     string
		full     int64 // the bytes of body all the responses hold
	}{
		{"fast loop, 50 pipelined files", false, strings.Repeat(get("/file"), 50), 50 * int64(len(largeBody))},
		{"fast loop, sendfile", false, get("/huge-file"), hugeSize},
		{"fast loop, one large write", false, get("/huge-write"), hugeSize},
		{"net/http, 50 pipelined files", true, strings.Repeat(get("/file"), 50), 50 * int64(len(largeBody))},
		{"net/http, sendfile", true, get("/huge-file"), hugeSize},
		{"net/http, one large write", true, get("/huge-write"), hugeSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialSmall(t, startWriteTimeoutServer(t, h, tt.disabled, timeout))
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * timeout) // not reading
			// What the buffers held still arrives; then the connection
			// must end, not wait for more reads or the idle timeout.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %d bytes: %v", n, err)
			}
			if n >= tt.full {
				t.Fatalf("received %d bytes, all of the %d: the server never gave up", n, tt.full)
			}
			t.Logf("closed after %d of %d body bytes (%v)", n, tt.full, err)
		})
	}
}

// TestWriteTimeoutLetsSlowReadersFinish: the deadline is on progress, so a
// client that reads steadily gets a response that takes many timeouts.
func TestWriteTimeoutLetsSlowReadersFinish(t *testing.T) {
	const timeout = 400 * time.Millisecond
	h := writeTimeoutHandler(t)
	for _, disabled := range []bool{false, true} {
		for _, path := range []string{"/huge-file", "/huge-write"} {
			t.Run(map[bool]string{false: "fast loop ", true: "net/http "}[disabled]+path, func(t *testing.T) {
				c := dialSmall(t, startWriteTimeoutServer(t, h, disabled, timeout))
				io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nRange: bytes=0-8388607\r\n\r\n")
				start := time.Now()
				n := readSlowly(t, c, 8<<20)
				took := time.Since(start)
				if n < 8<<20 || took < 3*timeout {
					t.Fatalf("read %d bytes in %v; want 8 MiB over more than %v", n, took, 3*timeout)
				}
				t.Logf("read %d bytes in %v with a write timeout of %v", n, took, timeout)
			})
		}
	}
}

// readSlowly reads at most 64 KiB every 5 ms until want bytes
// of body have come, and returns how many did.
func readSlowly(t *testing.T, c net.Conn, want int) int {
	t.Helper()
	buf := make([]byte, 64<<10)
	got := 0
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for got < want {
		n, err := c.Read(buf)
		got += n
		if err != nil {
			t.Logf("read ended: %v", err)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return got
}
