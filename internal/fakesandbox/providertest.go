package fakesandbox

import (
	"context"
	"errors"
	"strings"
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

// CheckFault checks the error of a Create that a provider's fault (a bad
// key, an outage, a timeout) made fail: permanent or not as the fault
// calls for, with a message naming provider and holding message, never
// reading as the build's own timeout, never holding the key.
func CheckFault(t *testing.T, err error, provider, key string, permanent bool, message string) {
	t.Helper()
	if err == nil {
		t.Fatal("create succeeded")
	}
	if libra.IsPermanent(err) != permanent || !strings.Contains(err.Error(), message) || !strings.Contains(strings.ToLower(err.Error()), provider) {
		t.Fatalf("err %v: permanent %v, want %v and a message with %q", err, libra.IsPermanent(err), permanent, message)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a provider fault reads as the build's own timeout: %v", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Fatalf("the key is in the error: %v", err)
	}
}

// CheckCommandTimeout checks that a command outliving its timeout ends
// with the command's deadline, which the build step reports as the
// build's timeout.
func CheckCommandTimeout(t *testing.T, p libra.SandboxProvider, workDir string) {
	t.Helper()
	ctx := context.Background()
	sb, err := p.Create(ctx, libra.SandboxOptions{DeploymentID: "d", OrgID: "o", WorkDir: workDir})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Destroy(ctx)
	_, err = sb.Run(ctx, libra.Command{Args: []string{"sleep", "30"}, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the command's deadline", err)
	}
}
