package main_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWriteTimeoutClosesStalledConnections is issue 8, finding 10: 20
// connections that pipelined 50 GETs of a 300 KB file and never read
// stayed open past the idle timeout, megabytes unsent each. With
// WRITE_TIMEOUT they must close within about two timeouts, on the fast
// loop and on net/http alike, and the server must stay healthy.
func TestWriteTimeoutClosesStalledConnections(t *testing.T) {
	const timeout = 2 * time.Second
	for _, fast := range []string{"on", "off"} {
		t.Run("SITE_FAST_PATH="+fast, func(t *testing.T) {
			s := startServer(t, "WRITE_TIMEOUT=2s", "SITE_FAST_PATH="+fast)
			tok := s.setup("acme", "site")
			body := staticSite("acme", "site", 1)
			body["initFiles"] = append(body["initFiles"].([]map[string]any), map[string]any{"path": "big.js", "content": noise(300_000)})
			if st := s.waitFinal(s.deploy(tok, body).str("deploymentId"), time.Minute); st.str("status") != "completed" {
				t.Fatalf("deploy: %s", st.body)
			}
			host := "site.localhost:" + s.port
			pid := s.cmd.Process.Pid
			base := fdCount(t, pid)
			conns := stallPipelined(t, s.port, host, 20, 50)
			time.Sleep(500 * time.Millisecond)
			open := fdCount(t, pid)
			start := time.Now()
			for fdCount(t, pid) > base+2 && time.Since(start) < 4*timeout+5*time.Second {
				time.Sleep(100 * time.Millisecond)
			}
			closedIn, left := time.Since(start), fdCount(t, pid)
			t.Logf("server fds: %d before, %d with 20 stalled connections, %d after %v (WRITE_TIMEOUT %v)", base, open, left, closedIn.Round(100*time.Millisecond), timeout)
			if open < base+20 {
				t.Fatalf("the 20 connections were not open at the server (%d fds, %d before)", open, base)
			}
			if left > base+2 {
				t.Errorf("%d of 20 stalled connections still open after %v", left-base, closedIn)
			}
			for _, c := range conns {
				c.Close()
			}
			if h := s.do("GET", "/health", nil); h.status != 200 {
				t.Errorf("health: %d %s", h.status, h.body)
			}
			if r := s.do("GET", "/big.js", nil, "Host", host); r.status != 200 || len(r.body) != 300_000 {
				t.Errorf("site after the stalled clients: %d, %d bytes", r.status, len(r.body))
			}
		})
	}
}

// noise is n bytes of letters that do not compress much.
func noise(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}

// stallPipelined opens n connections with a small receive buffer, each
// sending pipelined GETs of /big.js, and never reads from them.
func stallPipelined(t *testing.T, port, host string, n, gets int) []net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		return errors.Join(err, serr)
	}}
	req := strings.Repeat(fmt.Sprintf("GET /big.js HTTP/1.1\r\nHost: %s\r\n\r\n", host), gets)
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

func fdCount(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
