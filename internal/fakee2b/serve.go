package fakee2b

import (
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
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
	url, spec := fakesandbox.Serve(t, "E2B", f, f.Close,
		openapicheck.Mount{Prefix: "/envd", SpecFile: "e2b/envd.yaml", Unlisted: []string{"/process.Process/"}},
		openapicheck.Mount{Prefix: "", SpecFile: "e2b/openapi.yml"})
	r.APIURL, r.SandboxURL, r.Spec = url, url+"/envd", spec
	return r
}
