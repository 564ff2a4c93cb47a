package bwrap

import (
	"context"
	"os/exec"
	"testing"
	"time"

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
