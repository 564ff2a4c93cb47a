package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The client commands end to end: the real binary as a CLI against the
// real binary as a server, through a recording proxy where a test must
// count requests or break them.

// cliResult is what one CLI run printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// cli runs `libra-deploy args...` against apiURL with tok.
func cli(t testing.TB, apiURL, tok string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "LIBRA_URL="+apiURL, "LIBRA_TOKEN="+tok)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errOut.String(), elapsed: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run CLI: %v", err)
	}
	return res
}

// deployJSON is `deploy --json`'s object.
type deployJSON struct {
	DeploymentID  string `json:"deploymentId"`
	Status        string `json:"status"`
	URL           string `json:"url"`
	FilesUploaded int    `json:"filesUploaded"`
	FilesPresent  int    `json:"filesPresent"`
	BytesUploaded int64  `json:"bytesUploaded"`
	elapsed       time.Duration
}

func cliDeployJSON(t testing.TB, apiURL, tok, dir, project string, wantCode int) deployJSON {
	t.Helper()
	r := cli(t, apiURL, tok, "deploy", dir, "--project", project, "--json")
	if r.code != wantCode {
		t.Fatalf("deploy exited %d, want %d\nstdout: %s\nstderr: %s", r.code, wantCode, r.stdout, tail(r.stderr, 3000))
	}
	var out deployJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("deploy --json printed %q: %v", r.stdout, err)
	}
	out.elapsed = r.elapsed
	return out
}

func writeFolder(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		abs := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pageAt fetches path from a deployment's URL through the server's port.
func (s *server) pageAt(siteURL, path string) response {
	s.t.Helper()
	u, err := url.Parse(siteURL)
	if err != nil || u.Host == "" {
		s.t.Fatalf("bad site URL %q", siteURL)
	}
	return s.do("GET", path, nil, "Host", u.Host)
}

func TestCLIDeployUploadsOnlyWhatChanged(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	dir := t.TempDir()
	writeFolder(t, dir, map[string]string{
		"index.html": "<h1>v1</h1>", "app.js": "console.log(1)", "css/site.css": strings.Repeat("a{}", 5000),
		"copy.css": strings.Repeat("a{}", 5000), // same content as css/site.css: uploaded once
		".env":     "SECRET=1", ".env.local": "SECRET=2", "node_modules/x/index.js": "x", ".git/HEAD": "ref",
		".libraignore": "*.log\ndrafts/\n", "debug.log": "x", "drafts/a.html": "x",
	})

	first := cliDeployJSON(t, s.url, tok, dir, "web", 0)
	if first.Status != "completed" || first.FilesUploaded != 3 || first.FilesPresent != 0 || first.BytesUploaded != int64(len("<h1>v1</h1>")+len("console.log(1)")+15000) {
		t.Fatalf("first deploy: %+v; want 3 contents uploaded for 4 files, none present before", first)
	}
	for path, want := range map[string]int{"/": 200, "/app.js": 200, "/copy.css": 200, "/.env": 404, "/.env.local": 404,
		"/debug.log": 404, "/drafts/a.html": 404, "/node_modules/x/index.js": 404, "/.libraignore": 404} {
		if got := s.pageAt(first.URL, path).status; got != want {
			t.Errorf("%s on the deployed site: %d, want %d", path, got, want)
		}
	}

	writeFolder(t, dir, map[string]string{"index.html": "<h1>v2</h1>"})
	second := cliDeployJSON(t, s.url, tok, dir, "web", 0)
	if second.FilesUploaded != 1 || second.FilesPresent != 3 || second.BytesUploaded != int64(len("<h1>v2</h1>")) {
		t.Fatalf("second deploy with one file changed: %+v; want exactly one uploaded", second)
	}
	if p := s.pageAt(second.URL, "/"); string(p.body) != "<h1>v2</h1>" {
		t.Fatalf("second deployment serves %q", p.body)
	}

	// Not a terminal: stdout is the URL and nothing else.
	plain := cli(t, s.url, tok, "deploy", dir, "--project", "web")
	if plain.code != 0 || !strings.HasPrefix(plain.stdout, "http://") || strings.Count(plain.stdout, "\n") != 1 || strings.Contains(plain.stdout, " ") {
		t.Fatalf("plain deploy: exit %d, stdout %q; want the URL alone", plain.code, plain.stdout)
	}
	if !strings.Contains(plain.stderr, "all already on the server") {
		t.Fatalf("progress on stderr: %q", plain.stderr)
	}
}

func TestCLIExitCodes(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	s.setup("globex", "theirs")
	good, bad := t.TempDir(), t.TempDir()
	writeFolder(t, good, map[string]string{"index.html": "<h1>ok</h1>"})
	pkg := `{"name":"failing","private":true,"version":"1.0.0","scripts":{"build":"echo about to fail; exit 1"}}`
	writeFolder(t, bad, map[string]string{"package.json": pkg, "index.html": "x"})

	failed := cliDeployJSON(t, s.url, tok, bad, "web", 1)
	if failed.Status != "failed" || failed.DeploymentID == "" {
		t.Fatalf("failing build: %+v", failed)
	}
	tests := []struct {
		name  string
		tok   string
		args  []string
		code  int
		hint  string
		empty bool // nothing on stdout
	}{
		{"completed", tok, []string{"deploy", good, "--project", "web"}, 0, "", false},
		{"no project flag", tok, []string{"deploy", good}, 2, "--project is required", true},
		{"prod and preview", tok, []string{"deploy", good, "--project", "web", "--prod", "--preview"}, 2, "exclude", true},
		{"not a folder", tok, []string{"deploy", filepath.Join(good, "index.html"), "--project", "web"}, 2, "not a folder", true},
		{"no token", "", []string{"deploy", good, "--project", "web"}, 4, "LIBRA_TOKEN", true},
		{"bad token", "ld_wrong", []string{"deploy", good, "--project", "web"}, 4, "LIBRA_TOKEN", true},
		{"another org's project", tok, []string{"deploy", good, "--project", "theirs"}, 4, "another org", true},
		{"unknown project", tok, []string{"deploy", good, "--project", "nope"}, 4, "not found", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, s.url, tt.tok, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.hint) || tt.empty != (r.stdout == "") {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q (want it to say %q)", r.code, tt.code, r.stdout, tail(r.stderr, 1000), tt.hint)
			}
		})
	}
}

// recorder is a reverse proxy to the server that counts requests and can
// answer or break some of them itself.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int // "PUT /files/{sha256}", "POST /deploy", ...
	log    []string       // every request's key, in order
	// intercept, when it returns true, has answered the request.
	intercept func(w http.ResponseWriter, r *http.Request, n int) bool
}

func (rec *recorder) key(r *http.Request) string {
	p := r.URL.Path
	if strings.HasPrefix(p, "/files/") && p != "/files/missing" {
		p = "/files/{sha256}"
	}
	return r.Method + " " + p
}

func startRecorder(t testing.TB, target string, intercept func(w http.ResponseWriter, r *http.Request, n int) bool) (*recorder, string) {
	u, _ := url.Parse(target)
	rec := &recorder{counts: map[string]int{}, intercept: intercept}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		k := rec.key(r)
		rec.counts[k]++
		rec.log = append(rec.log, k)
		n := rec.counts[k]
		rec.mu.Unlock()
		if rec.intercept != nil && rec.intercept(w, r, n) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func (rec *recorder) count(key string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.counts[key]
}

func TestCLIRetriesServerErrorsButNotRefusals(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	dir := t.TempDir()
	files := map[string]string{}
	for i := range 5 {
		files[fmt.Sprintf("f%d.html", i)] = fmt.Sprintf("<p>%d</p>", i)
	}
	writeFolder(t, dir, files)

	// Every upload is refused once with a 400: each is sent once, the
	// command fails as a client error and nothing is deployed.
	refuse, refuseURL := startRecorder(t, s.url, func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if r.Method != "PUT" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"success":false,"error":"VALIDATION_ERROR","message":"refused by the test proxy","timestamp":"2026-11-30T00:00:00Z"}`)
		return true
	})
	r := cli(t, refuseURL, tok, "deploy", dir, "--project", "web", "--json")
	if r.code != 4 || !strings.Contains(r.stderr, "refused by the test proxy") {
		t.Fatalf("refused upload: exit %d, stderr %q", r.code, tail(r.stderr, 500))
	}
	if puts := refuse.count("PUT /files/{sha256}"); puts < 1 || puts > 5 {
		t.Fatalf("%d PUTs for 5 files each refused with 400; a 4xx must not be retried", puts)
	}
	if refuse.count("POST /deploy") != 0 {
		t.Fatalf("deployed after a refused upload")
	}

	// The first attempt of every upload fails with 503: each is retried
	// once, and the deployment completes.
	flaky, flakyURL := startRecorder(t, s.url, nil)
	var failedOnce sync.Map
	flaky.intercept = func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if r.Method != "PUT" {
			return false
		}
		if _, seen := failedOnce.LoadOrStore(r.URL.Path, true); seen {
			return false
		}
		w.WriteHeader(503)
		return true
	}
	out := cliDeployJSON(t, flakyURL, tok, dir, "web", 0)
	if out.Status != "completed" || out.FilesUploaded != 5 || flaky.count("PUT /files/{sha256}") != 10 {
		t.Fatalf("503 once per upload: %+v after %d PUTs; want 5 uploaded in 10 PUTs", out, flaky.count("PUT /files/{sha256}"))
	}
}

func TestCLIResumesAnInterruptedUpload(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	dir := t.TempDir()
	const n, cut = 40, 15
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("page-%02d.html", i)] = fmt.Sprintf("<p>page %d</p>", i)
	}
	writeFolder(t, dir, files)

	// After cut uploads went through, the proxy drops every connection
	// that carries an upload, as a network that went away would.
	var through atomic.Int64
	rec, proxyURL := startRecorder(t, s.url, func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if r.Method != "PUT" || through.Add(1) <= cut {
			return false
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	})
	r := cli(t, proxyURL, tok, "deploy", dir, "--project", "web", "--json")
	if r.code != 4 || rec.count("POST /deploy") != 0 {
		t.Fatalf("cut upload: exit %d, %d deploys; want 4 and none\nstderr: %s", r.code, rec.count("POST /deploy"), tail(r.stderr, 800))
	}
	resumed := cliDeployJSON(t, s.url, tok, dir, "web", 0)
	if resumed.Status != "completed" || resumed.FilesUploaded != n-cut || resumed.FilesPresent != cut {
		t.Fatalf("resumed deploy: %+v; want %d uploaded, %d present", resumed, n-cut, cut)
	}
}

func TestCLILargeProjects(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 files")
	}
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "big")
	s.admin("project", "create", "--org", "acme", "--id", "huge")
	many := t.TempDir()
	files := map[string]string{"index.html": "<h1>many</h1>"}
	for i := 1; i < 10_000; i++ {
		files[fmt.Sprintf("d%02d/f%04d.txt", i%100, i)] = fmt.Sprintf("file %d", i)
	}
	writeFolder(t, many, files)
	out := cliDeployJSON(t, s.url, tok, many, "big", 0)
	if out.Status != "completed" || out.FilesUploaded != 10_000 {
		t.Fatalf("10,000 files: %+v", out)
	}
	t.Logf("10,000 files: deployed in %v (command start to exit)", out.elapsed)
	if p := s.pageAt(out.URL, "/d07/f0007.txt"); p.status != 200 || string(p.body) != "file 7" {
		t.Fatalf("a file of 10,000: %d %q", p.status, p.body)
	}

	// A file at the per-file limit.
	limit := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), (25<<20)/16)
	writeFolder(t, limit, map[string]string{"index.html": "<h1>limit</h1>", "big.bin": string(big)})
	out = cliDeployJSON(t, s.url, tok, limit, "huge", 0)
	if out.Status != "completed" || out.BytesUploaded != int64(len(big))+int64(len("<h1>limit</h1>")) {
		t.Fatalf("a file at the limit: %+v", out)
	}
	t.Logf("a file of 25 MiB: deployed in %v", out.elapsed)
	if p := s.pageAt(out.URL, "/big.bin"); p.status != 200 || len(p.body) != len(big) {
		t.Fatalf("the file at the limit is served with %d bytes (status %d)", len(p.body), p.status)
	}
}

func (rec *recorder) total() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.log)
}

// before counts the requests after the first start that came before the
// first one following a deployment (its events or its status).
func (rec *recorder) before(start int) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	n := 0
	for _, k := range rec.log[start:] {
		if strings.HasSuffix(k, "/events") || strings.HasPrefix(k, "GET /deploy-status") {
			break
		}
		n++
	}
	return n
}

// logs, ls, rollback, and promote and cancel against a server that may not
// have those routes yet (a clear client error then).
func TestCLIManageCommands(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	dir := t.TempDir()
	writeFolder(t, dir, map[string]string{"index.html": "<h1>one</h1>"})
	first := cliDeployJSON(t, s.url, tok, dir, "web", 0)
	writeFolder(t, dir, map[string]string{"index.html": "<h1>two</h1>"})
	second := cliDeployJSON(t, s.url, tok, dir, "web", 0)

	ls := cli(t, s.url, tok, "ls", "--project", "web", "--json")
	var list []struct {
		ID         string `json:"id"`
		Production bool   `json:"production"`
	}
	if err := json.Unmarshal([]byte(ls.stdout), &list); ls.code != 0 || err != nil || len(list) != 2 || list[0].ID != second.DeploymentID || !list[0].Production {
		t.Fatalf("ls --json: exit %d, %q, %v", ls.code, ls.stdout, err)
	}
	if table := cli(t, s.url, tok, "ls", "--project", "web"); !strings.Contains(table.stdout, first.DeploymentID) || !strings.Contains(table.stdout, "STATUS") {
		t.Fatalf("ls: %q", table.stdout)
	}

	rb := cli(t, s.url, tok, "rollback", "--project", "web", first.DeploymentID, "--json")
	if rb.code != 0 || !strings.Contains(rb.stdout, `"deploymentId":"`+first.DeploymentID+`"`) {
		t.Fatalf("rollback: exit %d, %q, %q", rb.code, rb.stdout, rb.stderr)
	}
	if p := s.page("web", "/"); string(p.body) != "<h1>one</h1>" {
		t.Fatalf("production after rollback serves %q", p.body)
	}

	for _, args := range [][]string{{"logs", first.DeploymentID}, {"logs", first.DeploymentID, "--follow"}} {
		r := cli(t, s.url, tok, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "[validate]") || !strings.Contains(r.stdout, "[deploy]") {
			t.Fatalf("%v: exit %d, %q", args, r.code, r.stdout)
		}
	}
	if r := cli(t, s.url, tok, "logs", first.DeploymentID, "--json"); !strings.HasPrefix(r.stdout, `{"timestamp":`) {
		t.Fatalf("logs --json: %q", r.stdout)
	}
	if r := cli(t, s.url, tok, "logs", "nosuchdeployment"); r.code != 4 {
		t.Fatalf("logs of an unknown deployment: exit %d, %q", r.code, r.stderr)
	}
	for _, cmd := range []string{"promote", "cancel"} {
		r := cli(t, s.url, tok, cmd, second.DeploymentID, "--json")
		if r.code == 2 || r.code == 0 && !strings.Contains(r.stdout, second.DeploymentID) {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", cmd, r.code, r.stdout, r.stderr)
		}
	}
	if r := cli(t, s.url, tok, "promote"); r.code != 2 {
		t.Fatalf("promote without an id: exit %d", r.code)
	}
}
