package bwrap

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the connections a proxy accepts: one per tunnel
// (CONNECT), so it shows whether the package manager reuses its tunnels.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// BenchmarkProxyInstall runs `npm install` of the project in
// LIBRA_BENCH_PROJECT (a directory with a package.json and no lockfile,
// e.g. cmd/libra-deploy/testdata/aiapp) on the host, with an empty npm
// cache each time, directly and through the install proxy on a local port,
// alternately: the proxy's own cost, without the sandbox's.
func BenchmarkProxyInstall(b *testing.B) {
	project := os.Getenv("LIBRA_BENCH_PROJECT")
	if project == "" {
		b.Skip("LIBRA_BENCH_PROJECT names no project to install")
	}
	url, cl := startBenchProxy(b)
	var direct, proxied time.Duration
	for b.Loop() {
		direct += npmInstall(b, project, nil)
		before := cl.n.Load()
		proxied += npmInstall(b, project, []string{"npm_config_https_proxy=" + url, "npm_config_proxy=" + url})
		b.Logf("proxied install: %d tunnels", cl.n.Load()-before)
	}
	n := time.Duration(b.N)
	b.ReportMetric((direct / n).Seconds(), "direct-s")
	b.ReportMetric((proxied / n).Seconds(), "proxied-s")
	b.Logf("npm install: direct %.1f s, through the proxy %.1f s (%.2fx)", (direct / n).Seconds(), (proxied / n).Seconds(), proxied.Seconds()/direct.Seconds())
}

// startBenchProxy starts an install proxy for the registry hosts on a
// local port, counting its connections, until the benchmark ends.
func startBenchProxy(b *testing.B) (url string, cl *countingListener) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cl = &countingListener{Listener: l}
	px, err := NewProxy(ProxyConfig{AllowedHosts: DefaultRegistryHosts(b.Context())})
	if err != nil {
		b.Fatal(err)
	}
	if err := px.Start(cl); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { px.Close() })
	return "http://" + l.Addr().String(), cl
}

// npmInstall installs a fresh copy of project with an empty cache.
func npmInstall(b *testing.B, project string, env []string) time.Duration {
	b.Helper()
	dir := b.TempDir()
	work := filepath.Join(dir, "p")
	if out, err := exec.Command("cp", "-r", project, work).CombinedOutput(); err != nil {
		b.Fatalf("copy: %v\n%s", err, out)
	}
	_ = os.RemoveAll(filepath.Join(work, "node_modules"))
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--legacy-peer-deps")
	cmd.Dir = work
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "CI=1",
		"npm_config_cache=" + filepath.Join(dir, "cache"), "npm_config_update_notifier=false",
		"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"}, env...)
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("npm install: %v\n%s", err, out)
	}
	return time.Since(t0)
}
