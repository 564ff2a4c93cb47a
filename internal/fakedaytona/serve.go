package fakedaytona

import (
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
	"github.com/libra-deploy/libra-deploy/internal/openapicheck"
)

// Running is a fake served on a local port.
type Running struct {
	*Fake
	// APIURL is what DAYTONA_API_URL points at.
	APIURL string
	// Spec validates the traffic; nil when the published specs are absent.
	Spec *openapicheck.Checker
}

// Start serves a fake accepting key until the test ends. When the
// published specs are present, every exchange is validated against them
// and the test fails at cleanup if one did not match.
func Start(t testing.TB, key string) *Running {
	t.Helper()
	f := New(key)
	r := &Running{Fake: f}
	url, spec := fakesandbox.Serve(t, "Daytona", f, f.Close,
		// socket.io is the TypeScript SDK's event channel, not part of the
		// REST spec; the fake does not serve it and the SDK falls back to
		// polling.
		openapicheck.Mount{Prefix: "/api", SpecFile: "daytona/api.openapi.yaml", Unlisted: []string{"/socket.io/"}},
		openapicheck.Mount{Prefix: "/toolbox", StripSegments: 1, SpecFile: "daytona/toolbox.openapi.yaml",
			OpaqueResponses: []string{"/files/bulk-download"}})
	f.URL, r.APIURL, r.Spec = url, url+"/api", spec
	return r
}
