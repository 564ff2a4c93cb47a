package openapicheck_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/openapicheck"
)

// The checker must fail what breaks the spec, or it proves nothing.
func TestCheckerCatchesViolations(t *testing.T) {
	dir, ok := openapicheck.SpecsDir()
	if !ok {
		t.Skip("spec check skipped: ../shared/specs is absent")
	}
	cases := []struct {
		name, method, path, body, answer string
		header                           map[string]string
		status                           int
		want                             string
	}{
		{"sandbox without required fields", "POST", "/sandboxes", `{"templateID":"base"}`, `{"sandboxID":"x"}`, map[string]string{"X-API-Key": "k"}, 201, "response 201"},
		{"missing templateID", "POST", "/sandboxes", `{"timeout":5}`, `{}`, map[string]string{"X-API-Key": "k"}, 400, "request POST /sandboxes"},
		{"no API key", "DELETE", "/sandboxes/abc", ``, ``, nil, 204, "request DELETE"},
		{"a path E2B does not have", "GET", "/nowhere", ``, `{}`, map[string]string{"X-API-Key": "k"}, 200, "not in"},
		{"a valid exchange", "DELETE", "/sandboxes/abc", ``, ``, map[string]string{"X-API-Key": "k"}, 204, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.answer != "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.answer)
			})
			c, err := openapicheck.Load(fake, openapicheck.Mount{SpecFile: filepath.Join(dir, "e2b", "openapi.yml")})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			c.ServeHTTP(httptest.NewRecorder(), req)
			got := strings.Join(c.Failures(), "\n")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("failures %q, want one with %q", got, tc.want)
			}
		})
	}
}
