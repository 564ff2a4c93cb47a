package bwrap

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// result is what one command did.
type result struct {
	code  int
	err   error
	lines []string
	took  time.Duration
}

func (r result) out() string { return strings.Join(r.lines, "\n") }

// newSandbox creates a sandbox on p for a fresh project directory and
// destroys it when the test ends.
func newSandbox(t testing.TB, p *Provider, org string) (libra.Sandbox, string) {
	t.Helper()
	work := newWorkDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sb, err := p.Create(ctx, libra.SandboxOptions{DeploymentID: "dep-" + org, OrgID: org, WorkDir: work})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Destroy(context.Background()); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return sb, work
}

// run runs a command and collects its output.
func run(t testing.TB, sb libra.Sandbox, c libra.Command) result {
	t.Helper()
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	var mu sync.Mutex
	var r result
	c.Output = func(l string) {
		mu.Lock()
		r.lines = append(r.lines, l)
		mu.Unlock()
	}
	t0 := time.Now()
	r.code, r.err = sb.Run(context.Background(), c)
	r.took = time.Since(t0)
	return r
}

// sh runs a shell script without network.
func sh(t testing.TB, sb libra.Sandbox, script string) result {
	t.Helper()
	return run(t, sb, libra.Command{Args: []string{"sh", "-c", script}})
}

func mustOK(t testing.TB, r result, what string) {
	t.Helper()
	if r.err != nil || r.code != 0 {
		t.Fatalf("%s: code %d, err %v, output:\n%s", what, r.code, r.err, r.out())
	}
}
