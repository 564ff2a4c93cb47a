package main_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// Content-addressed uploads end to end: POST /files/missing answers per
// org, PUT /files/{sha256} checks what it stores, and POST /deploy takes
// files by digest only when the org holds them.

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// put uploads content as its own digest unless digest is given.
func (s *server) put(tok string, content []byte, digest string) response {
	s.t.Helper()
	if digest == "" {
		digest = sum(content)
	}
	return s.do("PUT", "/files/"+digest, content, append(bearer(tok), "Content-Type", "application/octet-stream")...)
}

func (s *server) missing(tok string, hashes ...string) []string {
	s.t.Helper()
	r := s.do("POST", "/files/missing", map[string]any{"hashes": hashes}, bearer(tok)...)
	wantCode(s.t.(*testing.T), r, 200, "")
	raw, ok := r.json["missing"].([]any)
	if !ok {
		s.t.Fatalf("missing: no list in %s", r.body)
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		out[i], _ = v.(string)
	}
	return out
}

func TestFilesUploadAndDeployByDigest(t *testing.T) {
	s := startServer(t, noLimit...)
	tokA := s.setup("acme", "alpha")
	tokB := s.setup("globex", "beta")
	big := bytes.Repeat([]byte("<p>big page</p>\n"), 4096) // over the inline size
	small := []byte("body{color:teal}")
	never := []byte("never uploaded")

	if got := s.missing(tokA, sum(big), sum(small), sum(big)); strings.Join(got, ",") != sum(big)+","+sum(small) {
		t.Fatalf("before any upload: missing %v, want both, once each", got)
	}
	for _, c := range [][]byte{big, small} {
		r := s.put(tokA, c, "")
		wantCode(t, r, 201, "")
		if r.str("sha256") != sum(c) || int(r.json["size"].(float64)) != len(c) {
			t.Fatalf("PUT answered %s", r.body)
		}
	}
	if got := s.missing(tokA, sum(big), sum(small), sum(never)); len(got) != 1 || got[0] != sum(never) {
		t.Fatalf("org A after uploading two: missing %v, want only %s", got, sum(never))
	}
	// Another org never learns that A holds these.
	if got := s.missing(tokB, sum(big), sum(small)); len(got) != 2 {
		t.Fatalf("org B: missing %v, want both of A's files", got)
	}

	deployB := map[string]any{"projectId": "beta", "orgId": "globex", "userId": "user-globex",
		"files": []map[string]any{{"path": "index.html", "sha256": sum(big), "size": len(big)}}}
	r := s.deploy(tokB, deployB)
	wantCode(t, r, 400, "MISSING_FILES")
	if !strings.Contains(string(r.body), sum(big)) {
		t.Fatalf("MISSING_FILES does not list the digest: %s", r.body)
	}
	if list := s.do("GET", "/projects/beta/deployments", nil, bearer(tokB)...); len(listItems(list)) != 0 {
		t.Fatalf("a refused deployment was created: %s", list.body)
	}

	body := map[string]any{"projectId": "alpha", "orgId": "acme", "userId": "user-acme",
		"initFiles": []map[string]any{{"path": "about.html", "content": "<h1>about</h1>"}},
		"files": []map[string]any{
			{"path": "index.html", "sha256": sum(big), "size": len(big)},
			{"path": "css/site.css", "sha256": sum(small), "size": len(small)},
		}}
	id := s.deployWait(tokA, body, "completed")
	for path, want := range map[string][]byte{"/": big, "/css/site.css": small, "/about.html": []byte("<h1>about</h1>")} {
		if p := s.page(id, path); p.status != 200 || !bytes.Equal(p.body, want) {
			t.Fatalf("site %s: %d, %d bytes; want %d bytes", path, p.status, len(p.body), len(want))
		}
	}
}

func TestFilesRefusals(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "alpha")
	content := []byte("hello")
	tooBig := make([]byte, 25<<20+1)
	files := func(f ...map[string]any) map[string]any {
		return map[string]any{"projectId": "alpha", "orgId": "acme", "userId": "user-acme", "files": f}
	}
	wantCode(t, s.put(tok, content, ""), 201, "")
	tests := []struct {
		name   string
		send   func() response
		status int
		code   string
	}{
		{"wrong digest", func() response { return s.put(tok, []byte("other"), sum(content)) }, 400, "VALIDATION_ERROR"},
		{"malformed digest", func() response { return s.put(tok, content, "ABC") }, 400, "VALIDATION_ERROR"},
		{"over the per-file limit", func() response { return s.put(tok, tooBig, "") }, 413, "PAYLOAD_TOO_LARGE"},
		{"no token", func() response { return s.do("PUT", "/files/"+sum(content), content) }, 401, "UNAUTHORIZED"},
		{"malformed hash asked", func() response {
			return s.do("POST", "/files/missing", map[string]any{"hashes": []string{"xyz"}}, bearer(tok)...)
		}, 400, "VALIDATION_ERROR"},
		{"size not the uploaded one", func() response {
			return s.deploy(tok, files(map[string]any{"path": "a.txt", "sha256": sum(content), "size": 6}))
		}, 400, "VALIDATION_ERROR"},
		{"path also in initFiles", func() response {
			b := files(map[string]any{"path": "a.txt", "sha256": sum(content), "size": 5})
			b["initFiles"] = []map[string]any{{"path": "a.txt", "content": "x"}}
			return s.deploy(tok, b)
		}, 400, "VALIDATION_ERROR"},
		{"file where a directory is needed", func() response {
			return s.deploy(tok, files(map[string]any{"path": "a", "sha256": sum(content), "size": 5},
				map[string]any{"path": "a/b", "sha256": sum(content), "size": 5}))
		}, 400, "VALIDATION_ERROR"},
		{"sha256 missing", func() response { return s.deploy(tok, files(map[string]any{"path": "a", "size": 5})) }, 400, "VALIDATION_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.send(), tt.status, tt.code) })
	}
	// Refused uploads stored nothing the org holds.
	if got := s.missing(tok, sum([]byte("other")), sum(tooBig)); len(got) != 2 {
		t.Fatalf("refused uploads are held: missing %v", got)
	}
	if list := s.do("GET", "/projects/alpha/deployments", nil, bearer(tok)...); len(listItems(list)) != 0 {
		t.Fatalf("a refused deployment was created: %s", list.body)
	}
	// The one accepted upload counts toward the org's usage.
	u := s.do("GET", "/usage", nil, bearer(tok)...)
	up, _ := u.json["uploaded"].(map[string]any)
	total, _ := u.json["total"].(map[string]any)
	if up["files"] != 1.0 || up["bytes"] != 5.0 || total["bytes"] != 5.0 {
		t.Fatalf("usage after one upload of 5 bytes: %s", u.body)
	}
}

// An upload that no deployment uses is removed by gc once past the grace
// period, and is then reported missing again; one a deployment uses stays.
func TestFilesUnusedUploadsAreCollected(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "alpha")
	used := strings.Repeat("used by a deployment ", 1000)
	unused := strings.Repeat("never deployed ", 1000)
	young := strings.Repeat("uploaded just now ", 1000)
	for _, c := range []string{used, unused} {
		wantCode(t, s.put(tok, []byte(c), ""), 201, "")
	}
	s.deployWait(tok, map[string]any{"projectId": "alpha", "orgId": "acme", "userId": "user-acme",
		"files": []map[string]any{{"path": "index.html", "sha256": sum([]byte(used)), "size": len(used)}}}, "completed")

	old := time.Now().Add(-3 * time.Hour)
	for _, c := range []string{used, unused} {
		if err := os.Chtimes(blobFile(s, c), old, old); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, s.put(tok, []byte(young), ""), 201, "")
	out := s.admin("gc")
	if !exists(blobFile(s, used)) || exists(blobFile(s, unused)) || !exists(blobFile(s, young)) {
		t.Fatalf("after gc: used %v, unused %v, young %v; want true, false, true\n%s",
			exists(blobFile(s, used)), exists(blobFile(s, unused)), exists(blobFile(s, young)), out)
	}
	if got := s.missing(tok, sum([]byte(used)), sum([]byte(unused)), sum([]byte(young))); len(got) != 1 || got[0] != sum([]byte(unused)) {
		t.Fatalf("after gc, missing %v; want only the collected upload", got)
	}
}

// A static site deployed by digest is published by those digests, without
// storing each file again, and with nothing else weakened: a .env file is
// still left out, text still gets its compressed variants, a file whose
// content came inline is still stored, and a site whose build changes the
// files is never published by its inputs' digests (the frameworks tests).
func TestFilesByDigestPublishedWithoutStoringAgain(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "alpha")
	page := bytes.Repeat([]byte("<p>a page served as uploaded</p>\n"), 300)
	script := bytes.Repeat([]byte("console.log('compress me');\n"), 200)
	env := []byte("SECRET_TOKEN=do-not-publish\n")
	for _, c := range [][]byte{page, script, env} {
		wantCode(t, s.put(tok, c, ""), 201, "")
	}
	body := map[string]any{"projectId": "alpha", "orgId": "acme", "userId": "user-acme",
		"initFiles": []map[string]any{{"path": "about.html", "content": "<h1>about</h1>"}},
		"files": []map[string]any{
			{"path": "index.html", "sha256": sum(page), "size": len(page)},
			{"path": "js/app.js", "sha256": sum(script), "size": len(script)},
			{"path": ".env", "sha256": sum(env), "size": len(env)},
		}}
	id := s.deployWait(tok, body, "completed")
	logs := strings.Join(logMessages(s.waitFinal(id, time.Minute)), "\n")
	if !strings.Contains(logs, "published 3 files") || !strings.Contains(logs, "2 of them by the digest they were uploaded with") {
		t.Fatalf("want 3 files published, 2 by digest (index.html, js/app.js; not .env, not the inline about.html); log:\n%s", logs)
	}
	for path, want := range map[string][]byte{"/": page, "/js/app.js": script, "/about.html": []byte("<h1>about</h1>")} {
		if p := s.page(id, path); p.status != 200 || !bytes.Equal(p.body, want) {
			t.Fatalf("site %s: %d, %d bytes; want %d bytes", path, p.status, len(p.body), len(want))
		}
	}
	if p := s.page(id, "/.env"); p.status != 404 || bytes.Contains(p.body, []byte("do-not-publish")) {
		t.Fatalf("/.env: %d %q, want 404 without its content", p.status, p.body)
	}
	h, _ := s.siteHosts.Load(id)
	gz := s.do("GET", "/js/app.js", nil, "Host", h.(string), "Accept-Encoding", "gzip")
	if gz.header.Get("Content-Encoding") != "gzip" || len(gz.body) >= len(script) {
		t.Fatalf("app.js with gzip: Content-Encoding %q, %d bytes of %d", gz.header.Get("Content-Encoding"), len(gz.body), len(script))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz.body))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, script) {
		t.Fatalf("app.js's gzip variant decodes to %d bytes (%v), want the %d uploaded", len(got), err, len(script))
	}
}
