package bwrap

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	libra "github.com/libra-deploy/libra-deploy"
)

// BenchmarkStart measures what a sandbox adds to starting a command: `true`
// on the host against `true` in a sandbox (bwrap, namespaces, mounts, cgroup
// placement, seccomp, the helper), with and without the install-phase proxy.
func BenchmarkStart(b *testing.B) {
	needSandbox(b)
	hostPer := measure(b, "host", func(b *testing.B) {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	})
	sb, _ := newSandbox(b, shared, "org-bench")
	for _, network := range []bool{false, true} {
		name := "sandbox"
		if network {
			name = "sandbox+proxy"
		}
		per := measure(b, name, func(b *testing.B) {
			code, err := sb.Run(context.Background(), libra.Command{Args: []string{"/bin/true"}, Network: network, Timeout: 30 * time.Second})
			if err != nil || code != 0 {
				b.Fatalf("true in sandbox: %d %v", code, err)
			}
		})
		b.Logf("%s: %.2f ms per start, %.2f ms over the host's %.2f ms", name, ms(per), ms(per-hostPer), ms(hostPer))
	}
}

// measure runs one sub-benchmark and returns its time per operation.
func measure(b *testing.B, name string, op func(*testing.B)) time.Duration {
	var per time.Duration
	b.Run(name, func(b *testing.B) {
		t0 := time.Now()
		for b.Loop() {
			op(b)
		}
		per = time.Since(t0) / time.Duration(b.N)
		b.ReportMetric(ms(per), "ms/start")
	})
	return per
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkSyscalls measures what the sandbox costs a command that makes
// system calls all the time, as node does (reads, stats, futexes): dd
// copying 2 million single bytes (4 million read/write calls) on the host,
// in a sandbox whose seccomp filter allows everything, and in a sandbox
// with its real filter. The last two differ by the filter alone.
func BenchmarkSyscalls(b *testing.B) {
	needSandbox(b)
	dd := []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=2000000", "status=none"}
	hostPer := measureOp(b, "host", "ms/run", func(b *testing.B) {
		if out, err := exec.Command(dd[0], dd[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("dd: %v %s", err, out)
		}
	})
	sb, _ := newSandbox(b, shared, "org-bench")
	inSandbox := func(b *testing.B) {
		code, err := sb.Run(context.Background(), libra.Command{Args: dd, Timeout: time.Minute})
		if err != nil || code != 0 {
			b.Fatalf("dd in sandbox: %d %v", code, err)
		}
	}
	allowAll, err := assembleBPF([]bpfInsn{{code: unix.BPF_RET | unix.BPF_K, k: unix.SECCOMP_RET_ALLOW}})
	if err != nil {
		b.Fatal(err)
	}
	filter := shared.seccomp
	shared.seccomp = allowAll
	unfiltered := measureOp(b, "sandbox-allow-all", "ms/run", inSandbox)
	shared.seccomp = filter
	filtered := measureOp(b, "sandbox", "ms/run", inSandbox)
	b.Logf("4M system calls: host %.0f ms, sandbox without filter %.0f ms, sandbox %.0f ms",
		ms(hostPer), ms(unfiltered), ms(filtered))
}

// measureOp runs one sub-benchmark and returns its time per operation,
// reported in unit (milliseconds).
func measureOp(b *testing.B, name, unit string, op func(*testing.B)) time.Duration {
	var per time.Duration
	b.Run(name, func(b *testing.B) {
		t0 := time.Now()
		for b.Loop() {
			op(b)
		}
		per = time.Since(t0) / time.Duration(b.N)
		b.ReportMetric(ms(per), unit)
	})
	return per
}
