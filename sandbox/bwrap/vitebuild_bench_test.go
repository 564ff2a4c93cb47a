package bwrap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	libra "github.com/libra-deploy/libra-deploy"
)

// BenchmarkViteBuild runs `vite build` of an installed project
// (LIBRA_BENCH_PROJECT, with its node_modules, e.g. the profile app of
// cmd/libra-deploy/testdata/aiapp after an install) on the host and in a
// sandbox with the service's default limits, on the same copy, one variant
// after the other in each round: what the sandbox itself adds to a build,
// without the rest of a deployment, and which part of it does.
//
// Variants: the host as the build uid, with and without the sandbox's
// NODE_OPTIONS; the sandbox as it is; with a seccomp filter that allows
// everything; with no disk-use walk while the command runs; with the 2 GiB
// memory limit the service had before (node's heap capped at 1536 MiB). A
// CPU weight of 10000 (the most the cgroup allows) was measured too and
// made no difference.
func BenchmarkViteBuild(b *testing.B) {
	needSandbox(b)
	src := os.Getenv("LIBRA_BENCH_PROJECT")
	if src == "" {
		b.Skip("LIBRA_BENCH_PROJECT names no installed project")
	}
	vite := []string{"node", "node_modules/vite/bin/vite.js", "build", "--logLevel", "error"}
	def := viteSandbox(b, src, 70, nil)
	small := viteSandbox(b, src, 80, func(c *Config) { c.MemoryLimit = 2 << 30 })
	sandboxed := func(b *testing.B) time.Duration { return def.run(b, vite) }
	runVariants(b, "vite build", []benchVariant{
		{"host", func(b *testing.B) time.Duration { return hostVite(b, def, vite, "") }},
		{"host, NODE_OPTIONS", func(b *testing.B) time.Duration {
			return hostVite(b, def, vite, "--max-old-space-size="+fmt.Sprint(DefaultMemoryLimit*3/4>>20))
		}},
		{"sandbox", sandboxed},
		{"sandbox, no seccomp filter", withoutSeccomp(def.p, sandboxed)},
		{"sandbox, no disk walk", withoutDiskWalk(def.p, sandboxed)},
		{"sandbox, 2 GiB (old default)", func(b *testing.B) time.Duration { return small.run(b, vite) }},
	})
}

// benchVariant is one way of running the same work, timed.
type benchVariant struct {
	name string
	run  func(b *testing.B) time.Duration
}

// runVariants runs every variant once per round, one after the other, so
// that the machine's and the network's moods fall on all of them alike,
// and logs each one's mean and its ratio to the first.
func runVariants(b *testing.B, title string, variants []benchVariant) {
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
	b.Logf("%s (load average at end %s):%s", title, loadAvg(), report.String())
}

// withoutSeccomp runs run with p's sandboxes under a filter that allows
// every system call.
func withoutSeccomp(p *Provider, run func(b *testing.B) time.Duration) func(b *testing.B) time.Duration {
	return func(b *testing.B) time.Duration {
		allowAll, err := assembleBPF([]bpfInsn{{code: unix.BPF_RET | unix.BPF_K, k: unix.SECCOMP_RET_ALLOW}})
		if err != nil {
			b.Fatal(err)
		}
		filter := p.seccomp
		p.seccomp = allowAll
		defer func() { p.seccomp = filter }()
		return run(b)
	}
}

// withoutDiskWalk runs run with p's disk-use walk an hour apart.
func withoutDiskWalk(p *Provider, run func(b *testing.B) time.Duration) func(b *testing.B) time.Duration {
	return func(b *testing.B) time.Duration {
		interval := p.cfg.DiskCheckInterval
		p.cfg.DiskCheckInterval = time.Hour
		defer func() { p.cfg.DiskCheckInterval = interval }()
		return run(b)
	}
}

// viteBox is a sandbox with the service's default limits holding a copy
// of an installed project.
type viteBox struct {
	p    *Provider
	sb   libra.Sandbox
	work string
	uid  int
}

func viteSandbox(b *testing.B, src string, offset int, tune func(*Config)) *viteBox {
	b.Helper()
	cfg := testConfig(sharedRoot, fmt.Sprintf("vite%d", offset), offset)
	cfg.MemoryLimit, cfg.PidsLimit, cfg.DiskLimit, cfg.FileSizeLimit = 0, 0, 0, 0
	cfg.TmpSize, cfg.CPUTimeLimit, cfg.DiskCheckInterval = 0, 0, 0
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() }) // after the sandbox's own cleanup
	sb, work := newSandbox(b, p, "org-vite")
	if err := os.RemoveAll(work); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src, work).CombinedOutput(); err != nil {
		b.Fatalf("copy: %v\n%s", err, out)
	}
	uid := sb.(*sandbox).uid
	if err := chownTree(work, uid, uid); err != nil {
		b.Fatal(err)
	}
	return &viteBox{p: p, sb: sb, work: work, uid: uid}
}

func (v *viteBox) run(b *testing.B, args []string) time.Duration {
	r := run(b, v.sb, libra.Command{Args: args, Timeout: 5 * time.Minute})
	mustOK(b, r, "vite build in the sandbox")
	return r.took
}

// hostVite builds v's copy on the host as the build uid, so that either
// side can replace what the other wrote in dist/.
func hostVite(b *testing.B, v *viteBox, args []string, nodeOptions string) time.Duration {
	b.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = v.work
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + v.work, "CI=1"}
	if nodeOptions != "" {
		cmd.Env = append(cmd.Env, "NODE_OPTIONS="+nodeOptions)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(v.uid), Gid: uint32(v.uid)}}
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("vite build on the host: %v\n%s", err, out)
	}
	took := time.Since(t0)
	if _, err := os.Stat(filepath.Join(v.work, "dist", "index.html")); err != nil {
		b.Fatal(err)
	}
	return took
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
