package main_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// proxyFloodJS opens as many connections to the install proxy's socket as it
// can, from several processes (each has its own open files limit), and
// holds them all for a while: the attack of issue 8, item 1.
const proxyFloodJS = `const net = require("net");
const { fork } = require("child_process");
const [total, workers, holdMs] = process.argv.slice(2, 5).map(Number);
if (process.argv[5] === "worker") {
  const held = [];
  let connected = 0, failed = 0, pending = 0, started = 0;
  const want = Math.ceil(total / workers);
  const more = () => {
    while (pending < 500 && started < want) {
      started++; pending++;
      const c = net.connect("/run/libra/proxy.sock");
      let settled = false;
      const done = (ok) => { if (settled) return; settled = true; pending--; ok ? connected++ : failed++; finish(); more(); };
      c.on("connect", () => { held.push(c); done(true); });
      c.on("error", () => done(false));
    }
  };
  const finish = () => { if (started === want && pending === 0) process.send({ connected, failed }); };
  more();
  setInterval(() => {}, 1000);
} else {
  let connected = 0, failed = 0, reported = 0;
  const kids = [];
  for (let i = 0; i < workers; i++) {
    const k = fork(__filename, [total, workers, holdMs, "worker"]);
    kids.push(k);
    k.on("message", (m) => {
      connected += m.connected; failed += m.failed;
      if (++reported === workers) {
        console.log("FLOOD HOLDING connected=" + connected + " failed=" + failed);
        setTimeout(() => { kids.forEach((k) => k.kill("SIGKILL")); console.log("FLOOD DONE"); process.exit(0); }, holdMs);
      }
    });
  }
}
`

// probeStats is what sampling the service saw while a build flooded it.
type probeStats struct {
	samples, failures  int
	maxHealth, maxSite time.Duration
	maxFds             int
	maxRSSMB           int
}

// TestInstallProxyFloodKeepsServiceUp: a preinstall script opens more
// connections to the install proxy than the service has file descriptors
// and holds them. The service's descriptors stay bounded and /health and a
// published site keep answering quickly throughout.
func TestInstallProxyFloodKeepsServiceUp(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "flood")
	s.admin("project", "create", "--org", "acme", "--id", "site")
	st := s.waitFinal(s.deploy(tok, staticSite("acme", "site", 1)).str("deploymentId"), 30*time.Second)
	if st.str("status") != "completed" {
		t.Fatalf("static site: %s", st.body)
	}
	pid := s.cmd.Process.Pid
	baseline := countFds(t, pid)

	const total, workers, holdMs = 22000, 2, 12000
	f := nodeProject(map[string]string{
		"preinstall": fmt.Sprintf("node flood.js %d %d %d", total, workers, holdMs),
		"build":      `node -e "require('fs').mkdirSync('dist');require('fs').writeFileSync('dist/index.html','<h1>survived</h1>')"`,
	}, "flood.js", proxyFloodJS)
	id := deployFiles(s, tok, "acme", "flood", f).str("deploymentId")
	s.waitFor(id, 3*time.Minute, func(r response) bool {
		return strings.Contains(string(r.body), "FLOOD HOLDING") || r.str("status") == "failed" || r.str("status") == "completed"
	})
	stats := sampleService(t, s, pid, 8*time.Second)
	final := s.waitFinal(id, 3*time.Minute)
	held := regexp.MustCompile(`FLOOD HOLDING connected=(\d+) failed=(\d+)`).FindStringSubmatch(string(final.body))
	if held == nil {
		t.Fatalf("the flood never held its connections: %.3000s", final.body)
	}
	t.Logf("flood: %s connections held, %s refused by the kernel; service fds %d at rest, at most %d during the flood", held[1], held[2], baseline, stats.maxFds)
	t.Logf("during the flood: %d samples, %d failed, slowest /health %s, slowest site %s, service RSS at most %d MB", stats.samples, stats.failures, stats.maxHealth, stats.maxSite, stats.maxRSSMB)
	if final.str("status") != "completed" {
		t.Errorf("the flooding build did not complete: %.2000s", final.body)
	}
	if stats.maxFds > baseline+600 {
		t.Errorf("service held %d fds during the flood (at rest %d): not bounded", stats.maxFds, baseline)
	}
	if stats.maxRSSMB > 300 {
		t.Errorf("service RSS reached %d MB during the flood", stats.maxRSSMB)
	}
	if stats.failures > 0 || stats.maxHealth > 2*time.Second || stats.maxSite > 2*time.Second {
		t.Errorf("service degraded during the flood: %+v", stats)
	}
}

// sampleService polls /health and the site on new connections, and counts
// the service's fds, for d.
func sampleService(t *testing.T, s *server, pid int, d time.Duration) probeStats {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(host, path string) (time.Duration, bool) {
		req, _ := http.NewRequest("GET", s.url+path, nil)
		req.Host = host
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Logf("GET %s%s: %v", host, path, err)
			return time.Since(t0), false
		}
		resp.Body.Close()
		return time.Since(t0), resp.StatusCode == 200
	}
	var st probeStats
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		h, okH := get("127.0.0.1:"+s.port, "/health")
		site, okS := get("site.localhost:"+s.port, "/")
		st.samples++
		if !okH || !okS {
			st.failures++
		}
		st.maxHealth, st.maxSite = max(st.maxHealth, h), max(st.maxSite, site)
		st.maxFds = max(st.maxFds, countFds(t, pid))
		st.maxRSSMB = max(st.maxRSSMB, rssMB(t, pid))
	}
	return st
}

func countFds(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatalf("count fds: %v", err)
	}
	return len(ents)
}

// rssMB is the process's resident memory in MB (VmRSS).
func rssMB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return kb / 1024
}

// TestServeRefusesBadProxySettings: a bad proxy setting stops serve at
// start, naming the variable, rather than running with something else.
func TestServeRefusesBadProxySettings(t *testing.T) {
	cases := []struct{ env, want string }{
		{"SANDBOX_PROXY_PORTS=443,http", "SANDBOX_PROXY_PORTS"},
		{"SANDBOX_PROXY_PORTS=70000", "SANDBOX_PROXY_PORTS"},
		{"SANDBOX_PROXY_MAX_CONNS=-1", "SANDBOX_PROXY_MAX_CONNS"},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			// A serve that accepted the setting would keep running: the
			// deadline ends it, and that counts as a failure.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
			cmd.Env = append(os.Environ(), tc.env, "SANDBOX_ROOT="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil || err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("serve with %s: %v (deadline: %v)\n%.2000s", tc.env, err, ctx.Err(), out)
			}
		})
	}
}
