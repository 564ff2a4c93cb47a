package fakecloudflare

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

const (
	account = "0123456789abcdef0123456789abcdef"
	token   = "secret-token"
)

// TestSpecCheckerCatches shows the checker is no rubber stamp: requests
// that break the published spec are reported, good ones are not.
func TestSpecCheckerCatches(t *testing.T) {
	spec, err := LoadSpec(FindSpec())
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("SKIPPING: %v (shared/specs is absent)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(spec.Wrap(New(account, token)))
	defer srv.Close()
	scripts := srv.URL + "/accounts/" + account + "/workers/scripts/s1"
	for _, tc := range []struct {
		name        string
		req         func() *http.Request
		wantViolate string
	}{
		{"session without manifest", func() *http.Request {
			return jsonReq(t, scripts+"/assets-upload-session", `{}`)
		}, `property "manifest" is missing`},
		{"good session", func() *http.Request {
			return jsonReq(t, scripts+"/assets-upload-session", `{"manifest":{"/a.html":{"hash":"051240d22ab9086ec5997a6d1ad35ec1","size":6}}}`)
		}, ""},
		{"upload without base64=true", func() *http.Request {
			r, _ := http.NewRequest("POST", srv.URL+"/accounts/"+account+"/workers/assets/upload", strings.NewReader(""))
			r.Header.Set("Authorization", "Bearer x")
			return r
		}, `parameter "base64" in query has an error`},
		{"script with an unknown html_handling", func() *http.Request {
			return scriptReq(t, scripts, `{"main_module":"w.js","assets":{"config":{"html_handling":"sometimes"}}}`)
		}, "html_handling"},
		{"script without a token", func() *http.Request {
			r := scriptReq(t, scripts, `{"main_module":"w.js"}`)
			r.Header.Del("Authorization")
			return r
		}, "security requirements failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, before, _ := spec.Report()
			resp, err := http.DefaultClient.Do(tc.req())
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			_, after, _ := spec.Report()
			added := strings.Join(after[len(before):], "\n")
			if tc.wantViolate == "" && added != "" || !strings.Contains(added, tc.wantViolate) {
				t.Errorf("violations = %q, want one with %q", added, tc.wantViolate)
			}
		})
	}
}

func jsonReq(t *testing.T, url, body string) *http.Request {
	r, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func scriptReq(t *testing.T, url, meta string) *http.Request {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	h := map[string][]string{"Content-Disposition": {`form-data; name="metadata"`}, "Content-Type": {"application/json"}}
	p, _ := w.CreatePart(h)
	p.Write([]byte(meta))
	h = map[string][]string{"Content-Disposition": {`form-data; name="w.js"; filename="w.js"`}, "Content-Type": {"application/javascript+module"}}
	p, _ = w.CreatePart(h)
	p.Write([]byte("export default {}"))
	w.Close()
	r, err := http.NewRequest("PUT", url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", w.FormDataContentType())
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}
