package bwrap

import (
	"os"
	"path/filepath"
	"testing"
	"time"

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
	proxyURL, _ := startBenchProxy(b)
	box := viteSandbox(b, src, 90, nil)
	install := []string{"npm", "install", "--no-audit", "--no-fund", "--legacy-peer-deps"}
	sandboxed := func(b *testing.B) time.Duration { return box.install(b, install) }
	runVariants(b, "npm install, cold", []benchVariant{
		{"host", func(b *testing.B) time.Duration { return npmInstall(b, src, nil) }},
		{"host, through the proxy", func(b *testing.B) time.Duration {
			return npmInstall(b, src, []string{"npm_config_https_proxy=" + proxyURL, "npm_config_proxy=" + proxyURL})
		}},
		{"sandbox", sandboxed},
		{"sandbox, no seccomp filter", withoutSeccomp(box.p, sandboxed)},
		{"sandbox, no disk walk", withoutDiskWalk(box.p, sandboxed)},
	})
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
