package bwrap

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	libra "github.com/libra-deploy/libra-deploy"
)

// BenchmarkSandboxInstall runs a cold `npm install` of the project in
// LIBRA_BENCH_PROJECT (its node_modules and lockfile removed first, npm's
// cache empty) on the host, directly and through the install proxy, and in
// a sandbox with the service's default limits, as it is and without each
// of its per-syscall and per-interval costs: what the sandbox adds to an
// install, and which part of it does. One variant after the other in each
// round, so the registry's and the network's moods fall on all of them.
func BenchmarkSandboxInstall(b *testing.B) {
	needSandbox(b)
	src := os.Getenv("LIBRA_BENCH_PROJECT")
	if src == "" {
		b.Skip("LIBRA_BENCH_PROJECT names no project")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	px, err := NewProxy(ProxyConfig{AllowedHosts: DefaultRegistryHosts(b.Context())})
	if err != nil {
		b.Fatal(err)
	}
	if err := px.Start(l); err != nil {
		b.Fatal(err)
	}
	defer px.Close()
	proxyURL := "http://" + l.Addr().String()
	box := viteSandbox(b, src, 90, nil)
	install := []string{"npm", "install", "--no-audit", "--no-fund", "--legacy-peer-deps"}
	allowAll, err := assembleBPF([]bpfInsn{{code: unix.BPF_RET | unix.BPF_K, k: unix.SECCOMP_RET_ALLOW}})
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		run  func(b *testing.B) time.Duration
	}{
		{"host", func(b *testing.B) time.Duration { return npmInstall(b, src, nil) }},
		{"host, through the proxy", func(b *testing.B) time.Duration {
			return npmInstall(b, src, []string{"npm_config_https_proxy=" + proxyURL, "npm_config_proxy=" + proxyURL})
		}},
		{"sandbox", func(b *testing.B) time.Duration { return box.install(b, install) }},
		{"sandbox, no seccomp filter", func(b *testing.B) time.Duration {
			filter := box.p.seccomp
			box.p.seccomp = allowAll
			defer func() { box.p.seccomp = filter }()
			return box.install(b, install)
		}},
		{"sandbox, no disk walk", func(b *testing.B) time.Duration {
			interval := box.p.cfg.DiskCheckInterval
			box.p.cfg.DiskCheckInterval = time.Hour
			defer func() { box.p.cfg.DiskCheckInterval = interval }()
			return box.install(b, install)
		}},
	}
	took := make([]time.Duration, len(variants))
	for b.Loop() {
		for i, v := range variants {
			took[i] += v.run(b)
		}
	}
	var report strings.Builder
	for i, v := range variants {
		per := took[i] / time.Duration(b.N)
		fmt.Fprintf(&report, "\n  %-28s %6.2f s  %.2fx", v.name, per.Seconds(), took[i].Seconds()/took[0].Seconds())
	}
	b.Logf("npm install, cold (load average at end %s):%s", loadAvg(), report.String())
}

// install runs a cold install in v's copy: node_modules, the lockfile and
// the sandbox's package-manager cache removed first.
func (v *viteBox) install(b *testing.B, args []string) time.Duration {
	b.Helper()
	for _, p := range []string{filepath.Join(v.work, "node_modules"), filepath.Join(v.work, "package-lock.json"), filepath.Join(v.work, "dist")} {
		if err := os.RemoveAll(p); err != nil {
			b.Fatal(err)
		}
	}
	cache := v.sb.(*sandbox).cacheDir
	entries, err := os.ReadDir(cache)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(cache, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
	r := run(b, v.sb, libra.Command{Args: args, Network: true, Timeout: 10 * time.Minute})
	mustOK(b, r, "npm install in the sandbox")
	return r.took
}
