package daytona_test

import (
	"context"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/fakedaytona"
)

// What the remote sandbox costs beyond the commands themselves: create,
// wait until started, upload, one command with its sync back, delete,
// against the local fake (so: our client's and the protocol's overhead,
// not Daytona's latency).
func BenchmarkDaytonaLifecycle(b *testing.B) {
	fake := fakedaytona.Start(b, testKey)
	fake.StartAfterPolls = 0
	p := newProvider(fake, testKey)
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
