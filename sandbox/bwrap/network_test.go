package bwrap

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// netProbe tries, from inside the sandbox, every way out the tests care
// about and prints one "name result" line each.
const netProbe = `
const net = require('net'), dns = require('dns'), http = require('http');
const [loopPort, regIP] = process.argv.slice(2);
const tcp = (host, port) => new Promise(res => {
  const s = net.connect({host, port});
  const t = setTimeout(() => { s.destroy(); res('FAIL timeout'); }, 3000);
  s.on('connect', () => { clearTimeout(t); s.destroy(); res('OPEN'); });
  s.on('error', e => { clearTimeout(t); res('FAIL ' + e.code); });
});
const lookup = name => new Promise(res => dns.lookup(name, (err, a) => res(err ? 'FAIL ' + err.code : 'OK ' + a)));
const viaProxy = target => new Promise(res => {
  const p = process.env.HTTPS_PROXY;
  if (!p) return res('NOPROXY');
  const u = new URL(p);
  const req = http.request({host: u.hostname, port: u.port, method: 'CONNECT', path: target});
  const t = setTimeout(() => { req.destroy(); res('FAIL timeout'); }, 15000);
  req.on('connect', (resp, sock) => { clearTimeout(t); sock.destroy(); res('STATUS ' + resp.statusCode); });
  req.on('error', e => { clearTimeout(t); res('FAIL ' + e.code); });
  req.end();
});
(async () => {
  console.log('loopback', await tcp('127.0.0.1', +loopPort));
  console.log('registry-ip', await tcp(regIP, 443));
  console.log('dns', await lookup('registry.npmjs.org'));
  console.log('proxy-loopback', await viaProxy('127.0.0.1:' + loopPort));
  console.log('proxy-other-host', await viaProxy('example.com:443'));
  console.log('proxy-registry', await viaProxy('registry.npmjs.org:443'));
})();
`

func TestNetwork(t *testing.T) {
	needSandbox(t)
	sb, work := newSandbox(t, shared, "org-net")
	if err := os.WriteFile(filepath.Join(work, "probe.js"), []byte(netProbe), 0o644); err != nil {
		t.Fatal(err)
	}

	// A service on the host's loopback that no build may reach.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	ips, err := net.DefaultResolver.LookupHost(context.Background(), "registry.npmjs.org")
	if err != nil || len(ips) == 0 {
		t.Fatalf("resolve registry on the host: %v", err)
	}

	cases := []struct {
		name    string
		network bool
		want    map[string]string // probe → result prefix
	}{
		{"build phase: nothing reachable", false, map[string]string{
			"loopback":         "FAIL",
			"registry-ip":      "FAIL",
			"dns":              "FAIL",
			"proxy-loopback":   "NOPROXY",
			"proxy-registry":   "NOPROXY",
			"proxy-other-host": "NOPROXY",
		}},
		{"install phase: only the registry, through the proxy", true, map[string]string{
			"loopback":         "FAIL",
			"registry-ip":      "FAIL",
			"dns":              "FAIL",
			"proxy-loopback":   "STATUS 403",
			"proxy-other-host": "STATUS 403",
			"proxy-registry":   "STATUS 200",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, sb, libra.Command{Args: []string{"node", "probe.js", port, ips[0]}, Network: tc.network, Timeout: 60 * time.Second})
			mustOK(t, r, "probe")
			got := map[string]string{}
			for _, line := range r.lines {
				k, v, _ := strings.Cut(line, " ")
				got[k] = v
			}
			for k, prefix := range tc.want {
				if !strings.HasPrefix(got[k], prefix) {
					t.Errorf("%s: %q, want %q…", k, got[k], prefix)
				}
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the host's loopback service accepted %d connections from sandboxes", n)
	}
	// The proxy socket exists only while an install-phase command runs.
	if _, err := os.Stat(filepath.Join(shared.boxes, sb.(*sandbox).name, "proxy.sock")); !os.IsNotExist(err) {
		t.Fatalf("proxy socket left behind: %v", err)
	}
}

func TestNpmInstallThroughProxy(t *testing.T) {
	needSandbox(t)
	const org = "org-npm"
	sb, work := newSandbox(t, shared, org)
	pkg := `{"name":"t","version":"1.0.0","private":true,"dependencies":{"is-number":"7.0.0"}}`
	if err := os.WriteFile(filepath.Join(work, "package.json"), []byte(pkg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, sb, libra.Command{Args: []string{"npm", "install", "--no-audit", "--no-fund"}, Network: true, Timeout: 120 * time.Second})
	mustOK(t, r, "npm install")
	r = run(t, sb, libra.Command{Args: []string{"node", "-e", "console.log('is-number:', require('is-number')(42))"}})
	mustOK(t, r, "require")
	if !strings.Contains(r.out(), "is-number: true") {
		t.Fatalf("installed package does not work:\n%s", r.out())
	}
	// Without network npm cannot fetch anything new; the cache it just
	// filled is on the host, in the org's cache directory.
	if err := sb.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(shared.cfg.CacheDir, orgCacheKey(org), "npm")
	var files int
	err := filepath.Walk(cache, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		files++
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
			t.Errorf("%s owned by %d after Destroy", fi.Name(), st.Uid)
		}
		return nil
	})
	if err != nil || files < 3 {
		t.Fatalf("org cache %s: %d files, %v", cache, files, err)
	}
	if st := mustStat(t, filepath.Join(work, "node_modules", "is-number", "package.json")); st.Uid != 0 {
		t.Fatalf("project file owned by %d after Destroy, want root", st.Uid)
	}
}

func mustStat(t testing.TB, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
