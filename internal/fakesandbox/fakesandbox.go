// Package fakesandbox holds what the fakes of remote sandbox providers
// (internal/fakedaytona, internal/fakee2b) share: serving a fake with its
// traffic checked against the published specs, confining a sandbox's paths
// to its home, stopping its commands, and running a provider's own SDK
// against a fake.
package fakesandbox

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/openapicheck"
)

// Serve serves h on a local port until the test ends, then closes the
// server and calls stop. When the published specs are present, every
// exchange is validated against mounts (whose spec files are relative to
// the specs directory) and the test fails at cleanup if one did not match;
// spec is nil otherwise.
func Serve(t testing.TB, provider string, h http.Handler, stop func(), mounts ...openapicheck.Mount) (url string, spec *openapicheck.Checker) {
	t.Helper()
	if dir, ok := openapicheck.SpecsDir(); ok {
		for i := range mounts {
			mounts[i].SpecFile = filepath.Join(dir, mounts[i].SpecFile)
		}
		c, err := openapicheck.Load(h, mounts...)
		if err != nil {
			t.Fatalf("load the %s specs: %v", provider, err)
		}
		spec, h = c, c
	} else {
		t.Logf("%s spec check skipped: ../shared/specs is absent", provider)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		stop()
		if spec == nil {
			return
		}
		for _, msg := range spec.Failures() {
			t.Errorf("%s spec: %s", provider, msg)
		}
	})
	return srv.URL, spec
}

// Resolve maps a sandbox path onto home: relative paths only, never
// leaving home, as the providers resolve paths against the user's home.
func Resolve(home, p string) (string, bool) {
	if p == "" || filepath.IsAbs(p) {
		return "", false
	}
	clean := filepath.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", false
	}
	return filepath.Join(home, clean), true
}

// Kill stops a started command and everything it started: the fakes run
// each command in its own process group.
func Kill(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
