package fakedaytona

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
	var h http.Handler = f
	if dir, ok := openapicheck.SpecsDir(); ok {
		c, err := openapicheck.Load(f,
			// socket.io is the TypeScript SDK's event channel, not part
			// of the REST spec; the fake does not serve it and the SDK
			// falls back to polling.
			openapicheck.Mount{Prefix: "/api", SpecFile: filepath.Join(dir, "daytona", "api.openapi.yaml"), Unlisted: []string{"/socket.io/"}},
			openapicheck.Mount{Prefix: "/toolbox", StripSegments: 1, SpecFile: filepath.Join(dir, "daytona", "toolbox.openapi.yaml"),
				OpaqueResponses: []string{"/files/bulk-download"}})
		if err != nil {
			t.Fatalf("load the Daytona specs: %v", err)
		}
		r.Spec, h = c, c
	} else {
		t.Log("Daytona spec check skipped: ../shared/specs is absent")
	}
	srv := httptest.NewServer(h)
	f.URL = srv.URL
	r.APIURL = srv.URL + "/api"
	t.Cleanup(func() {
		srv.Close()
		f.Close()
		if r.Spec == nil {
			return
		}
		for _, msg := range r.Spec.Failures() {
			t.Errorf("Daytona spec: %s", msg)
		}
	})
	return r
}
