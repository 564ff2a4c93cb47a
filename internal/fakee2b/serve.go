package fakee2b

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/openapicheck"
)

// Running is a fake served on a local port.
type Running struct {
	*Fake
	// APIURL and SandboxURL are what E2B_API_URL and E2B_SANDBOX_URL
	// point at.
	APIURL, SandboxURL string
	// Spec validates the traffic; nil when the published specs are absent.
	Spec *openapicheck.Checker
}

// Start serves a fake accepting key until the test ends. When the
// published specs are present, every exchange but the Connect stream
// (which process.proto describes) is validated against them, and the test
// fails at cleanup if one did not match.
func Start(t testing.TB, key string) *Running {
	t.Helper()
	f := New(key)
	r := &Running{Fake: f}
	var h http.Handler = f
	if dir, ok := openapicheck.SpecsDir(); ok {
		c, err := openapicheck.Load(f,
			openapicheck.Mount{Prefix: "/envd", SpecFile: filepath.Join(dir, "e2b", "envd.yaml"), Unlisted: []string{"/process.Process/"}},
			openapicheck.Mount{Prefix: "", SpecFile: filepath.Join(dir, "e2b", "openapi.yml")})
		if err != nil {
			t.Fatalf("load the E2B specs: %v", err)
		}
		r.Spec, h = c, c
	} else {
		t.Log("E2B spec check skipped: ../shared/specs is absent")
	}
	srv := httptest.NewServer(h)
	r.APIURL, r.SandboxURL = srv.URL, srv.URL+"/envd"
	t.Cleanup(func() {
		srv.Close()
		f.Close()
		if r.Spec == nil {
			return
		}
		for _, msg := range r.Spec.Failures() {
			t.Errorf("E2B spec: %s", msg)
		}
	})
	return r
}
