package e2b_test

import (
	"context"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/fakee2b"
)

// What the remote sandbox costs beyond the commands themselves: create,
// upload, one command with its sync back, delete,
// against the local fake (so: our client's and the protocol's overhead,
// not E2B's latency).
func BenchmarkE2BLifecycle(b *testing.B) {
	fake := fakee2b.Start(b, testKey)
	p := newProvider(fake, testKey, time.Minute)
	ctx := context.Background()
	for b.Loop() {
		sb, err := p.Create(ctx, libra.SandboxOptions{DeploymentID: "d", OrgID: "o", WorkDir: projectDir(b)})
		if err != nil {
			b.Fatal(err)
		}
		if code, err := sb.Run(ctx, libra.Command{Args: []string{"true"}, Timeout: time.Minute}); err != nil || code != 0 {
			b.Fatalf("run: %d %v", code, err)
		}
		if err := sb.Destroy(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/lifecycle")
}
