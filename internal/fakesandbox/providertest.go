package fakesandbox

import (
	"context"
	"sync"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// TimedLines records each output line of a command with when it arrived,
// so that a provider's test can tell streamed output from output held back
// until the command ended.
type TimedLines struct {
	mu    sync.Mutex
	Lines []string
	At    []time.Time
}

// Add records s; it is a libra.Command's Output.
func (l *TimedLines) Add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Lines = append(l.Lines, s)
	l.At = append(l.At, time.Now())
}

// Index is the place of the first line equal to s, or -1.
func (l *TimedLines) Index(s string) int {
	for i, x := range l.Lines {
		if x == s {
			return i
		}
	}
	return -1
}

// BenchLifecycle measures what a remote sandbox costs beyond the commands
// themselves: create (with the upload of workDir), one command with its
// sync back, destroy. Against a local fake, that is our client's and the
// protocol's overhead, not the provider's latency.
func BenchLifecycle(b *testing.B, p libra.SandboxProvider, workDir func() string) {
	ctx := context.Background()
	for b.Loop() {
		sb, err := p.Create(ctx, libra.SandboxOptions{DeploymentID: "d", OrgID: "o", WorkDir: workDir()})
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
