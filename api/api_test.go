package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/api"
	"github.com/libra-deploy/libra-deploy/artifact/fs"
	"github.com/libra-deploy/libra-deploy/sqlite"
)

// countingArtifacts is the real disk store, counting writes so tests can
// prove a rejected request stored nothing.
type countingArtifacts struct {
	*fs.Store
	puts atomic.Int64
}

func (c *countingArtifacts) Put(ctx context.Context, r io.Reader) (string, int64, error) {
	c.puts.Add(1)
	return c.Store.Put(ctx, r)
}

// faultyStore is the real SQLite store with two planted faults: a panic and
// an error whose text must never reach a client.
type faultyStore struct {
	*sqlite.DB
}

const (
	panicProject  = "panics"
	brokenProject = "broken"
	secretErrText = "open /var/lib/secret/libra.db: disk I/O error"
)

func (f faultyStore) Project(ctx context.Context, id string) (*libra.Project, error) {
	switch id {
	case panicProject:
		panic("planted panic " + secretErrText)
	case brokenProject:
		return nil, errors.New(secretErrText)
	}
	return f.DB.Project(ctx, id)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	t       *testing.T
	url     string
	db      *sqlite.DB
	arts    *countingArtifacts
	logs    *syncBuffer
	tokenA  string // org-a, user-a
	tokenA2 string // org-a, user-a2
	tokenB  string // org-b
}

func newEnv(t *testing.T, configure func(*api.Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, "libra.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, logs: &syncBuffer{}}
	// The real queue, insert-only: these tests check what the API accepts
	// and writes; nothing works the jobs.
	driver := riversqlite.New(db.Writer)
	if err := queue.Migrate(context.Background(), driver); err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(driver, nil, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	db.Enqueue = q.InsertManyTx
	store, err := fs.New(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	e.arts = &countingArtifacts{Store: store}

	for _, tok := range []struct {
		dst       *string
		org, user string
	}{{&e.tokenA, "org-a", "user-a"}, {&e.tokenA2, "org-a", "user-a2"}, {&e.tokenB, "org-b", "user-b"}} {
		v, err := api.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		*tok.dst = v
		if err := db.CreateToken(ctx, libra.Token{Hash: api.HashToken(v), OrgID: tok.org, UserID: tok.user, CreatedAt: libra.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []libra.Project{
		{ID: "proj-a", OrgID: "org-a", Name: "A"},
		{ID: "proj-b", OrgID: "org-b", Name: "B"},
		{ID: panicProject, OrgID: "org-a"},
		{ID: brokenProject, OrgID: "org-a"},
	} {
		p.CreatedAt = libra.Now()
		if err := db.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	cfg := api.Config{
		Store:     faultyStore{db},
		Artifacts: e.arts,
		Version:   "test",
		Logger:    slog.New(slog.NewJSONHandler(e.logs, nil)),
		RateLimit: rate.Inf,
	}
	if configure != nil {
		configure(&cfg)
	}
	srv := httptest.NewServer(api.New(cfg))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (e *env) do(method, path string, body io.Reader, header map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

// deploy posts body to /deploy as JSON with org-a's token.
func (e *env) deploy(body any) response {
	e.t.Helper()
	return e.do("POST", "/deploy", jsonBody(e.t, body), map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer " + e.tokenA,
	})
}

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	if s, ok := v.(string); ok {
		return strings.NewReader(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// wantError checks the unified error format.
func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, truncate(r.raw))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, truncate(r.raw))
	}
	if r.body["success"] != false {
		t.Errorf("success = %v, want false", r.body["success"])
	}
	if r.body["error"] != code {
		t.Errorf("error = %v, want %s; body %s", r.body["error"], code, truncate(r.raw))
	}
	if msg, _ := r.body["message"].(string); msg == "" {
		t.Errorf("message is empty")
	}
	ts, _ := r.body["timestamp"].(string)
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}
	for k := range r.body {
		switch k {
		case "success", "error", "message", "details", "timestamp":
		default:
			t.Errorf("unexpected field %q in error body", k)
		}
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Errorf("no X-Request-Id")
	}
}

func truncate(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// wantNothingCreated checks that no deployment, queue job, quota charge or
// blob came out of the requests so far.
func (e *env) wantNothingCreated() {
	e.t.Helper()
	if n := e.jobs(); n != 0 {
		e.t.Errorf("%d jobs enqueued, want 0", n)
	}
	if n := e.arts.puts.Load(); n != 0 {
		e.t.Errorf("%d blobs stored, want 0", n)
	}
	for _, org := range []string{"org-a", "org-b"} {
		q, err := e.db.Quota(context.Background(), org, libra.QuotaMonth(libra.Now()))
		if err != nil {
			e.t.Fatal(err)
		}
		if q.Used != 0 {
			e.t.Errorf("%s quota used = %d, want 0", org, q.Used)
		}
	}
}

func validDeploy() map[string]any {
	return map[string]any{"projectId": "proj-a", "orgId": "org-a", "userId": "user-a"}
}

func with(extra map[string]any) map[string]any {
	m := validDeploy()
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func files(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"path": fmt.Sprintf("f/%d.txt", i), "content": "x"}
	}
	return out
}

func TestDeployAcceptedAndStatus(t *testing.T) {
	e := newEnv(t, nil)
	png := []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff}
	r := e.deploy(with(map[string]any{
		"customDomain": "WWW.Example.COM.",
		"initFiles": []map[string]any{
			{"path": "index.html", "content": "<h1>hi</h1>"},
			{"path": "img/logo.png", "content": base64.StdEncoding.EncodeToString(png), "encoding": "base64"},
			{"path": "src/app.js", "content": "old"},
		},
		"historyMessages": []map[string]any{
			{"role": "user", "content": "make it better", "id": "m1", "createdAt": "2026-01-01T00:00:00Z"},
			{"role": "assistant", "content": "done", "diff": []map[string]any{
				{"path": "src/app.js", "type": "edit", "modified": "new", "original": "old"},
				{"path": "img/logo.png", "type": "delete"},
				{"path": "about.html", "type": "create", "modified": "about"},
			}},
		},
	}))
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	id, _ := r.body["deploymentId"].(string)
	if r.body["success"] != true || r.body["status"] != "queued" || !libra.LooksLikeDeploymentID(id) || r.body["message"] == "" {
		t.Fatalf("unexpected body %s", r.raw)
	}

	d, err := e.db.Deployment(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.ProjectID != "proj-a" || d.OrgID != "org-a" || d.UserID != "user-a" || d.Status != libra.StatusQueued {
		t.Errorf("stored deployment %+v", d)
	}
	if d.CustomDomain != "www.example.com" {
		t.Errorf("custom domain %q, want normalized www.example.com", d.CustomDomain)
	}
	want := []struct {
		path, typ, content string
	}{
		{"index.html", "create", "<h1>hi</h1>"},
		{"img/logo.png", "create", string(png)},
		{"src/app.js", "create", "old"},
		{"src/app.js", "edit", "new"},
		{"img/logo.png", "delete", ""},
		{"about.html", "create", "about"},
	}
	if len(d.Input) != len(want) {
		t.Fatalf("input has %d ops, want %d: %+v", len(d.Input), len(want), d.Input)
	}
	for i, w := range want {
		op := d.Input[i]
		if op.Path != w.path || op.Type != w.typ {
			t.Errorf("op %d = %s %s, want %s %s", i, op.Type, op.Path, w.typ, w.path)
		}
		if w.typ == "delete" {
			if op.Digest != "" {
				t.Errorf("delete op has digest %q", op.Digest)
			}
			continue
		}
		// Small files travel inline in the row; larger ones as blobs.
		got := op.Content
		if op.Digest != "" {
			rc, err := e.arts.Open(context.Background(), op.Digest)
			if err != nil {
				t.Fatalf("op %d blob %q: %v", i, op.Digest, err)
			}
			got, _ = io.ReadAll(rc)
			rc.Close()
		}
		if string(got) != w.content || op.Size != int64(len(w.content)) {
			t.Errorf("op %d content %q size %d, want %q", i, got, op.Size, w.content)
		}
	}
	if n := e.jobs(); n != 1 {
		t.Errorf("%d jobs enqueued, want 1", n)
	}

	s := e.do("GET", "/deploy-status?id="+id, nil, nil)
	if s.status != http.StatusOK {
		t.Fatalf("status endpoint: %d %s", s.status, s.raw)
	}
	if s.body["deploymentId"] != id || s.body["status"] != "queued" || s.body["progress"] != float64(0) {
		t.Errorf("status body %s", s.raw)
	}
	steps, _ := s.body["steps"].(map[string]any)
	for _, name := range libra.Steps {
		st, _ := steps[string(name)].(map[string]any)
		if st["status"] != "pending" {
			t.Errorf("step %s = %v, want pending", name, st)
		}
	}
	if logs, ok := s.body["logs"].([]any); !ok || len(logs) != 0 {
		t.Errorf("logs = %v, want []", s.body["logs"])
	}
	if _, has := s.body["url"]; has {
		t.Errorf("url present before the site is live")
	}

	// Once the workflow has moved it on, the endpoint shows it.
	now := libra.Now()
	d.Status = libra.StatusInProgress
	d.CurrentStep = libra.StepBuild
	d.Progress = 50
	d.Steps[libra.StepValidate] = libra.StepState{Status: libra.StepCompleted, Timestamp: &now}
	if err := e.db.UpdateDeployment(context.Background(), d, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.db.AppendLogs(context.Background(), id, []libra.LogEntry{{Time: now, Step: libra.StepBuild, Level: "info", Message: "vite build"}}); err != nil {
		t.Fatal(err)
	}
	s = e.do("GET", "/deploy-status?id="+id, nil, nil)
	steps, _ = s.body["steps"].(map[string]any)
	validate, _ := steps["validate"].(map[string]any)
	logs, _ := s.body["logs"].([]any)
	if s.body["status"] != "in_progress" || s.body["currentStep"] != "build" || s.body["progress"] != float64(50) ||
		validate["status"] != "completed" || validate["timestamp"] == nil || len(logs) != 1 {
		t.Errorf("status after progress: %s", s.raw)
	}
	// The seed's clients render logs as strings; the objects are asked for.
	if want := now.UTC().Format("15:04:05") + " [build] vite build"; len(logs) != 1 || logs[0] != want {
		t.Errorf("logs = %v, want [%q]", logs, want)
	}
	if _, has := s.body["logEntries"]; has {
		t.Errorf("logEntries sent without logEntries=true: %s", s.raw)
	}
	s = e.do("GET", "/deploy-status?logEntries=true&id="+id, nil, nil)
	entries, _ := s.body["logEntries"].([]any)
	if len(entries) != 1 {
		t.Fatalf("logEntries = %v, want one entry", s.body["logEntries"])
	}
	entry, _ := entries[0].(map[string]any)
	if entry["message"] != "vite build" || entry["step"] != "build" || entry["level"] != "info" || entry["timestamp"] == nil {
		t.Errorf("logEntries = %v", s.body["logEntries"])
	}
	if s.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", s.header.Get("Cache-Control"))
	}
}

func TestDeployRejectsBadInput(t *testing.T) {
	big := strings.Repeat("a", libra.MaxFileBytes+1)
	type tc struct {
		name        string
		body        any
		contentType string // default application/json
		status      int
		code        string
		field       string // must appear in details
	}
	cases := []tc{
		{name: "broken JSON", body: `{"projectId": "proj-a",`, status: 400, code: "VALIDATION_ERROR"},
		{name: "empty body", body: ``, status: 400, code: "VALIDATION_ERROR"},
		{name: "JSON array", body: `[]`, status: 400, code: "VALIDATION_ERROR"},
		{name: "missing projectId", body: map[string]any{"orgId": "org-a", "userId": "user-a"}, status: 400, code: "VALIDATION_ERROR", field: "projectId"},
		{name: "projectId wrong type", body: with(map[string]any{"projectId": 7}), status: 400, code: "VALIDATION_ERROR", field: "projectId"},
		{name: "projectId with space", body: with(map[string]any{"projectId": "proj a"}), status: 400, code: "VALIDATION_ERROR", field: "projectId"},
		{name: "userId too long", body: with(map[string]any{"userId": strings.Repeat("u", 129)}), status: 400, code: "VALIDATION_ERROR", field: "userId"},
		{name: "unknown top-level field", body: with(map[string]any{"framework": "vite"}), status: 400, code: "VALIDATION_ERROR", field: "framework"},
		{name: "field in wrong case", body: with(map[string]any{"initfiles": []any{}}), status: 400, code: "VALIDATION_ERROR", field: "initfiles"},
		{name: "text/plain", body: validDeploy(), contentType: "text/plain", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "no content type", body: validDeploy(), contentType: "-", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "form encoded", body: "projectId=proj-a", contentType: "application/x-www-form-urlencoded", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "vendor +json", body: validDeploy(), contentType: "application/vnd.x+json", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "dot-dot path", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "../etc/passwd", "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].path"},
		{name: "inner dot-dot path", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "a/../../b", "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].path"},
		{name: "absolute path", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "/etc/passwd", "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].path"},
		{name: "backslash path", body: with(map[string]any{"initFiles": []any{map[string]any{"path": `a\..\b`, "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].path"},
		{name: "NUL in path", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "a\x00b", "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].path"},
		{name: "path too long", body: with(map[string]any{"initFiles": []any{map[string]any{"path": strings.Repeat("p", libra.MaxPathBytes+1), "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].path"},
		{name: "empty path", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "", "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].path"},
		{name: "duplicate path", body: with(map[string]any{"initFiles": []any{
			map[string]any{"path": "a.txt", "content": "1"}, map[string]any{"path": "a.txt", "content": "2"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[1].path"},
		{name: "file is also a directory", body: with(map[string]any{"initFiles": []any{
			map[string]any{"path": "src", "content": "1"}, map[string]any{"path": "src/a.js", "content": "2"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[1].path"},
		{name: "invalid base64", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "a.bin", "content": "!!not base64!!", "encoding": "base64"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].content"},
		{name: "unknown encoding", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "a.bin", "content": "00", "encoding": "hex"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].encoding"},
		{name: "content missing", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "a.txt"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0]"},
		{name: "role system", body: with(map[string]any{"historyMessages": []any{map[string]any{"role": "system", "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "historyMessages[0].role"},
		{name: "diff type rename", body: with(map[string]any{"historyMessages": []any{map[string]any{"role": "assistant", "content": "x",
			"diff": []any{map[string]any{"path": "a", "type": "rename"}}}}}), status: 400, code: "VALIDATION_ERROR", field: "historyMessages[0].diff[0].type"},
		{name: "diff create without content", body: with(map[string]any{"historyMessages": []any{map[string]any{"role": "assistant", "content": "x",
			"diff": []any{map[string]any{"path": "a", "type": "create"}}}}}), status: 400, code: "VALIDATION_ERROR", field: "historyMessages[0].diff[0].modified"},
		{name: "diff dot-dot path", body: with(map[string]any{"historyMessages": []any{map[string]any{"role": "assistant", "content": "x",
			"diff": []any{map[string]any{"path": "../../x", "type": "delete"}}}}}), status: 400, code: "VALIDATION_ERROR", field: "historyMessages[0].diff[0].path"},
		{name: "diff invalid base64", body: with(map[string]any{"historyMessages": []any{map[string]any{"role": "assistant", "content": "x",
			"diff": []any{map[string]any{"path": "a", "type": "edit", "modified": "%%%", "encoding": "base64"}}}}}), status: 400, code: "VALIDATION_ERROR", field: "historyMessages[0].diff[0].modified"},
		{name: "domain not a host name", body: with(map[string]any{"customDomain": "not a domain"}), status: 400, code: "VALIDATION_ERROR", field: "customDomain"},
		{name: "domain one label", body: with(map[string]any{"customDomain": "intranet"}), status: 400, code: "VALIDATION_ERROR", field: "customDomain"},
		{name: "domain is an IP", body: with(map[string]any{"customDomain": "10.0.0.1"}), status: 400, code: "VALIDATION_ERROR", field: "customDomain"},
		{name: "domain under sites domain", body: with(map[string]any{"customDomain": "evil.localhost"}), status: 400, code: "VALIDATION_ERROR", field: "customDomain"},
		{name: "too many initFiles", body: with(map[string]any{"initFiles": files(libra.MaxFiles + 1)}), status: 413, code: "PAYLOAD_TOO_LARGE", field: "initFiles"},
		{name: "too many files with diffs", body: with(map[string]any{"initFiles": files(libra.MaxFiles), "historyMessages": []any{
			map[string]any{"role": "assistant", "content": "x", "diff": []any{map[string]any{"path": "z", "type": "delete"}}}}}), status: 413, code: "PAYLOAD_TOO_LARGE", field: "initFiles"},
		{name: "file over 25 MiB", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "big.txt", "content": big}}}), status: 413, code: "PAYLOAD_TOO_LARGE", field: "initFiles[0].content"},
		{name: "base64 file over 25 MiB", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "big.bin", "encoding": "base64",
			"content": base64.StdEncoding.EncodeToString([]byte(big))}}}), status: 413, code: "PAYLOAD_TOO_LARGE", field: "initFiles[0].content"},
		{name: "diff file over 25 MiB", body: with(map[string]any{"historyMessages": []any{map[string]any{"role": "assistant", "content": "x",
			"diff": []any{map[string]any{"path": "big", "type": "create", "modified": big}}}}}), status: 413, code: "PAYLOAD_TOO_LARGE", field: "historyMessages[0].diff[0].modified"},
		{name: "too many history messages", body: with(map[string]any{"historyMessages": make([]struct{}, 100_001)}), status: 413, code: "PAYLOAD_TOO_LARGE", field: "historyMessages"},
		{name: "content null", body: with(map[string]any{"initFiles": []any{map[string]any{"path": "a.txt", "content": nil}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles[0].content"},
		{name: "initFiles not a list", body: with(map[string]any{"initFiles": "a.txt"}), status: 400, code: "VALIDATION_ERROR", field: "initFiles"},
		{name: "file path a number", body: with(map[string]any{"initFiles": []any{map[string]any{"path": 7, "content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "initFiles"},
		{name: "diff unknown encoding", body: with(map[string]any{"historyMessages": []any{map[string]any{"role": "assistant", "content": "x",
			"diff": []any{map[string]any{"path": "a", "type": "edit", "modified": "00", "encoding": "hex"}}}}}), status: 400, code: "VALIDATION_ERROR", field: "historyMessages[0].diff[0].encoding"},
		{name: "history message without role", body: with(map[string]any{"historyMessages": []any{map[string]any{"content": "x"}}}), status: 400, code: "VALIDATION_ERROR", field: "historyMessages[0].role"},
		{name: "unknown project", body: with(map[string]any{"projectId": "nope"}), status: 404, code: "PROJECT_NOT_FOUND"},
		{name: "another org's project", body: with(map[string]any{"projectId": "proj-b"}), status: 403, code: "FORBIDDEN"},
		{name: "orgId of another org", body: with(map[string]any{"orgId": "org-b", "projectId": "proj-b"}), status: 403, code: "FORBIDDEN", field: "orgId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			h := map[string]string{"Authorization": "Bearer " + e.tokenA, "Content-Type": "application/json"}
			switch c.contentType {
			case "":
			case "-":
				delete(h, "Content-Type")
			default:
				h["Content-Type"] = c.contentType
			}
			r := e.do("POST", "/deploy", jsonBody(t, c.body), h)
			wantError(t, r, c.status, c.code)
			if c.field != "" && !strings.Contains(string(mustJSON(t, r.body["details"])), `"`+c.field) {
				t.Errorf("details do not name %s: %s", c.field, truncate(r.raw))
			}
			if len(r.raw) > 64<<10 {
				t.Errorf("error body is %d bytes; it must not echo the request", len(r.raw))
			}
			e.wantNothingCreated()
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeployManyProblemsAreCapped(t *testing.T) {
	e := newEnv(t, nil)
	bad := make([]map[string]any, 500)
	for i := range bad {
		bad[i] = map[string]any{"path": fmt.Sprintf("../%d", i), "content": "x"}
	}
	r := e.deploy(with(map[string]any{"initFiles": bad}))
	wantError(t, r, 400, "VALIDATION_ERROR")
	details, _ := r.body["details"].([]any)
	if len(details) == 0 || len(details) > 100 {
		t.Errorf("%d details, want a capped, non-empty list", len(details))
	}
	e.wantNothingCreated()
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, nil)
	// Valid JSON just over 50 MiB: the limit, not the content, must reject it.
	over := `{"projectId":"proj-a","orgId":"org-a","userId":"user-a","initFiles":[{"path":"a","content":"` +
		strings.Repeat("a", libra.MaxBodyBytes) + `"}]}`
	h := map[string]string{"Authorization": "Bearer " + e.tokenA, "Content-Type": "application/json"}

	t.Run("declared length", func(t *testing.T) {
		r := e.do("POST", "/deploy", strings.NewReader(over), h)
		wantError(t, r, 413, "PAYLOAD_TOO_LARGE")
	})
	t.Run("chunked", func(t *testing.T) {
		// An io.Reader of unknown length makes the client send chunks, so
		// the limit must hold while reading, not only from Content-Length.
		r := e.do("POST", "/deploy", io.MultiReader(strings.NewReader(over)), h)
		wantError(t, r, 413, "PAYLOAD_TOO_LARGE")
	})
	e.wantNothingCreated()

	t.Run("exactly the limit is read", func(t *testing.T) {
		// A body of exactly 50 MiB passes the size check and reaches the
		// per-file check (one file of ~50 MiB is over 25 MiB).
		head := `{"projectId":"proj-a","orgId":"org-a","userId":"user-a","initFiles":[{"path":"a","content":"`
		tail := `"}]}`
		body := head + strings.Repeat("a", libra.MaxBodyBytes-len(head)-len(tail)) + tail
		r := e.do("POST", "/deploy", strings.NewReader(body), h)
		wantError(t, r, 413, "PAYLOAD_TOO_LARGE")
		if !strings.Contains(string(r.raw), "initFiles[0].content") {
			t.Errorf("rejected by the body limit, not the file limit: %s", truncate(r.raw))
		}
	})
}

func TestAuthMatrix(t *testing.T) {
	e := newEnv(t, nil)
	type tc struct {
		name   string
		header map[string]string
		body   map[string]any
		status int
		code   string
	}
	cases := []tc{
		{name: "no token", status: 401, code: "UNAUTHORIZED"},
		{name: "unknown bearer", header: map[string]string{"Authorization": "Bearer ld_nope"}, status: 401, code: "UNAUTHORIZED"},
		{name: "empty bearer", header: map[string]string{"Authorization": "Bearer "}, status: 401, code: "UNAUTHORIZED"},
		{name: "basic scheme", header: map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b"))}, status: 401, code: "UNAUTHORIZED"},
		{name: "token hash as token", header: map[string]string{"Authorization": "Bearer " + api.HashToken(e.tokenA)}, status: 401, code: "UNAUTHORIZED"},
		{name: "unknown cookie", header: map[string]string{"Cookie": "session=ld_nope"}, status: 401, code: "UNAUTHORIZED"},
		{name: "huge token", header: map[string]string{"Authorization": "Bearer " + strings.Repeat("x", 5000)}, status: 401, code: "UNAUTHORIZED"},
		{name: "bearer ok", header: map[string]string{"Authorization": "Bearer " + e.tokenA}, status: 202},
		{name: "lower-case scheme ok", header: map[string]string{"Authorization": "bearer " + e.tokenA}, status: 202},
		{name: "cookie ok", header: map[string]string{"Cookie": "theme=dark; session=" + e.tokenA}, status: 202},
		{name: "bad header beats good cookie", header: map[string]string{"Authorization": "Bearer ld_nope", "Cookie": "session=" + e.tokenA}, status: 401, code: "UNAUTHORIZED"},
		{name: "other org's orgId", header: map[string]string{"Authorization": "Bearer " + e.tokenB}, status: 403, code: "FORBIDDEN"},
		{name: "other org's token, own org, foreign project", header: map[string]string{"Authorization": "Bearer " + e.tokenB},
			body: map[string]any{"projectId": "proj-a", "orgId": "org-b", "userId": "user-b"}, status: 403, code: "FORBIDDEN"},
		{name: "other org's token, own project", header: map[string]string{"Authorization": "Bearer " + e.tokenB},
			body: map[string]any{"projectId": "proj-b", "orgId": "org-b", "userId": "user-b"}, status: 202},
		{name: "another user's userId", header: map[string]string{"Authorization": "Bearer " + e.tokenA2}, status: 403, code: "FORBIDDEN"},
	}
	accepted := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			for k, v := range c.header {
				h[k] = v
			}
			body := c.body
			if body == nil {
				body = validDeploy()
			}
			r := e.do("POST", "/deploy", jsonBody(t, body), h)
			if c.status == 202 {
				accepted++
				if r.status != 202 {
					t.Fatalf("status %d, want 202: %s", r.status, r.raw)
				}
				return
			}
			wantError(t, r, c.status, c.code)
			if c.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	if n := e.jobs(); n != accepted {
		t.Errorf("%d deployments enqueued, want %d (only the accepted ones)", n, accepted)
	}

	t.Run("projects needs a token", func(t *testing.T) {
		r := e.do("POST", "/projects", jsonBody(t, map[string]any{"id": "x"}), map[string]string{"Content-Type": "application/json"})
		wantError(t, r, 401, "UNAUTHORIZED")
	})
	t.Run("status needs none", func(t *testing.T) {
		r := e.do("GET", "/deploy-status?id="+libra.NewDeploymentID(), nil, nil)
		wantError(t, r, 404, "DEPLOYMENT_NOT_FOUND")
	})
}

func TestProjects(t *testing.T) {
	e := newEnv(t, nil)
	h := map[string]string{"Authorization": "Bearer " + e.tokenB, "Content-Type": "application/json"}
	r := e.do("POST", "/projects", jsonBody(t, map[string]any{"id": "site-1", "name": "My site"}), h)
	if r.status != http.StatusCreated || r.body["id"] != "site-1" || r.body["orgId"] != "org-b" || r.body["name"] != "My site" {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	p, err := e.db.Project(context.Background(), "site-1")
	if err != nil || p.OrgID != "org-b" {
		t.Fatalf("stored project %+v, %v", p, err)
	}

	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"same id again", map[string]any{"id": "site-1"}, 409, "PROJECT_EXISTS"},
		{"id of another org's project", map[string]any{"id": "proj-a"}, 409, "PROJECT_EXISTS"},
		{"same host name", map[string]any{"id": "SITE-1"}, 409, "PROJECT_EXISTS"},
		{"bad id", map[string]any{"id": "a/b"}, 400, "VALIDATION_ERROR"},
		{"no id", map[string]any{"name": "x"}, 400, "VALIDATION_ERROR"},
		{"broken JSON", `{"id":`, 400, "VALIDATION_ERROR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.do("POST", "/projects", jsonBody(t, c.body), h), c.status, c.code)
		})
	}

	// The new project is deployable by its org only.
	d := e.do("POST", "/deploy", jsonBody(t, map[string]any{"projectId": "site-1", "orgId": "org-b", "userId": "user-b"}), h)
	if d.status != 202 {
		t.Errorf("deploy to new project: %d %s", d.status, d.raw)
	}
	wantError(t, e.deploy(with(map[string]any{"projectId": "site-1"})), 403, "FORBIDDEN")
}

func TestQuotaExceeded(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.db.SetQuota(context.Background(), "org-a", 1); err != nil {
		t.Fatal(err)
	}
	if r := e.deploy(validDeploy()); r.status != 202 {
		t.Fatalf("first deploy: %d %s", r.status, r.raw)
	}
	r := e.deploy(validDeploy())
	wantError(t, r, 429, "QUOTA_EXCEEDED")
	now := time.Now().UTC()
	untilNextMonth := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC).Sub(now)
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || time.Duration(secs)*time.Second > untilNextMonth+time.Minute {
		t.Errorf("Retry-After = %q, want the seconds until next month", r.header.Get("Retry-After"))
	}
	if n := e.jobs(); n != 1 {
		t.Errorf("%d enqueued, want 1", n)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.RateLimit = 0.5; c.RateBurst = 3 })
	post := func(token string) response {
		// An invalid body: the limit applies before validation and nothing
		// gets created either way.
		return e.do("POST", "/deploy", strings.NewReader(`{}`), map[string]string{
			"Authorization": "Bearer " + token, "Content-Type": "application/json"})
	}
	for i := 0; i < 3; i++ {
		wantError(t, post(e.tokenA), 400, "VALIDATION_ERROR")
	}
	r := post(e.tokenA)
	wantError(t, r, 429, "RATE_LIMITED")
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 2 {
		t.Errorf("Retry-After = %q, want 1 or 2 seconds", r.header.Get("Retry-After"))
	}
	// Buckets are per token, not per org.
	wantError(t, post(e.tokenA2), 400, "VALIDATION_ERROR")
	wantError(t, post(e.tokenB), 400, "VALIDATION_ERROR")
	// Unauthenticated requests are not charged to anyone's bucket.
	wantError(t, e.do("POST", "/deploy", strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"}), 401, "UNAUTHORIZED")
	e.wantNothingCreated()
}

func TestRouteErrors(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		method, path string
		status       int
		code         string
		allow        string
	}{
		{"GET", "/nope", 404, "NOT_FOUND", ""},
		{"GET", "/deploy-statuses", 404, "NOT_FOUND", ""},
		{"GET", "/docs/other.js", 404, "NOT_FOUND", ""},
		{"POST", "/nope", 404, "NOT_FOUND", ""},
		{"GET", "/deploy", 405, "METHOD_NOT_ALLOWED", "POST"},
		{"DELETE", "/deploy", 405, "METHOD_NOT_ALLOWED", "POST"},
		{"POST", "/health", 405, "METHOD_NOT_ALLOWED", "GET"},
		{"PUT", "/", 405, "METHOD_NOT_ALLOWED", "GET"},
		{"POST", "/deploy-status", 405, "METHOD_NOT_ALLOWED", "GET"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := e.do(c.method, c.path, nil, nil)
			wantError(t, r, c.status, c.code)
			if c.allow != "" && !strings.Contains(r.header.Get("Allow"), c.allow) {
				t.Errorf("Allow = %q, want it to list %s", r.header.Get("Allow"), c.allow)
			}
		})
	}
}

func TestDeployStatusNotFound(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{libra.NewDeploymentID(), "short", "UPPERCASEUPPERCASEUPPERCAS", "../../etc", strings.Repeat("a", 27), strings.Repeat("a", 500)} {
		t.Run(id, func(t *testing.T) {
			wantError(t, e.do("GET", "/deploy-status?id="+id, nil, nil), 404, "DEPLOYMENT_NOT_FOUND")
		})
	}
	t.Run("missing id", func(t *testing.T) {
		wantError(t, e.do("GET", "/deploy-status", nil, nil), 400, "VALIDATION_ERROR")
	})
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name, in string
		keep     bool
	}{
		{"none", "", false},
		{"sane", "abc-123_x.Y", true},
		{"max length", strings.Repeat("r", 128), true},
		{"too long", strings.Repeat("r", 129), false},
		{"bad characters", "id with spaces", false},
		{"header injection", "a\tb", false},
		{"slash", "a/b", false},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		for _, path := range []string{"/health", "/nope"} {
			t.Run(c.name+" "+path, func(t *testing.T) {
				h := map[string]string{}
				if c.in != "" {
					h["X-Request-Id"] = c.in
				}
				r := e.do("GET", path, nil, h)
				got := r.header.Get("X-Request-Id")
				if c.keep && got != c.in {
					t.Errorf("X-Request-Id = %q, want %q kept", got, c.in)
				}
				if !c.keep {
					if got == "" || got == c.in || len(got) > 128 || strings.ContainsAny(got, " /\t") {
						t.Errorf("X-Request-Id = %q, want a fresh id", got)
					}
					if seen[got] {
						t.Errorf("generated id %q repeated", got)
					}
					seen[got] = true
				}
			})
		}
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, nil)
	custom := newEnv(t, func(c *api.Config) { c.CORSOrigins = []string{"https://*.example.com", "https://app.test"} })
	cases := []struct {
		env     *env
		origin  string
		allowed bool
	}{
		{e, "http://localhost:5173", true},
		{e, "http://localhost:3000", true},
		{e, "http://localhost", true},
		{e, "https://libra.dev", true},
		{e, "https://libra.dev.evil.com", false},
		{e, "https://evil.example", false},
		{e, "http://localhost.evil.com", false},
		{e, "http://localhost:80@evil.com", false},
		{e, "http://localhost:abc", false},
		{e, "https://localhost:5173", false},
		{e, "null", false},
		{custom, "https://www.example.com", true},
		{custom, "https://a.b.example.com", true},
		{custom, "https://example.com", false},
		{custom, "https://evil.com/.example.com", false},
		{custom, "https://app.test", true},
		{custom, "http://localhost:5173", false},
	}
	for _, c := range cases {
		t.Run(c.origin, func(t *testing.T) {
			pre := c.env.do("OPTIONS", "/deploy", nil, map[string]string{
				"Origin": c.origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
			if pre.status != http.StatusNoContent {
				t.Errorf("preflight status %d, want 204", pre.status)
			}
			got := pre.header.Get("Access-Control-Allow-Origin")
			if c.allowed {
				if got != c.origin || pre.header.Get("Access-Control-Allow-Credentials") != "true" {
					t.Errorf("preflight: Allow-Origin %q credentials %q", got, pre.header.Get("Access-Control-Allow-Credentials"))
				}
				for _, want := range []string{"Authorization", "Content-Type", "X-Request-Id"} {
					if !strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), want) {
						t.Errorf("Allow-Headers %q lacks %s", pre.header.Get("Access-Control-Allow-Headers"), want)
					}
				}
				if !strings.Contains(pre.header.Get("Access-Control-Allow-Methods"), "POST") {
					t.Errorf("Allow-Methods %q", pre.header.Get("Access-Control-Allow-Methods"))
				}
			} else {
				for k := range pre.header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("denied origin got %s: %q", k, pre.header.Get(k))
					}
				}
			}
			// The actual request: headers only for allowed origins, and
			// the response is served either way (the browser enforces).
			r := c.env.do("GET", "/health", nil, map[string]string{"Origin": c.origin})
			if r.status != 200 {
				t.Errorf("GET /health with Origin: %d", r.status)
			}
			if (r.header.Get("Access-Control-Allow-Origin") == c.origin) != c.allowed {
				t.Errorf("GET: Allow-Origin %q, allowed=%v", r.header.Get("Access-Control-Allow-Origin"), c.allowed)
			}
			if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
				t.Errorf("no Vary: Origin")
			}
		})
	}
}

func TestHealth(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		e := newEnv(t, nil)
		r := e.do("GET", "/health", nil, nil)
		checks, _ := r.body["checks"].(map[string]any)
		if r.status != 200 || r.body["status"] != "healthy" || r.body["service"] != "libra-deploy" || r.body["version"] != "test" || checks["database"] != "healthy" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if _, ok := r.body["uptime"].(float64); !ok {
			t.Errorf("uptime %v is not a number", r.body["uptime"])
		}
	})
	t.Run("a check fails", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) {
			c.Checks = map[string]func(context.Context) error{
				"database": c.Store.Ping,
				"queue":    func(context.Context) error { return errors.New(secretErrText) },
			}
		})
		r := e.do("GET", "/health", nil, nil)
		checks, _ := r.body["checks"].(map[string]any)
		if r.status != 503 || r.body["status"] != "unhealthy" || checks["database"] != "healthy" || checks["queue"] != "unhealthy" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if strings.Contains(string(r.raw), "/var/lib") {
			t.Errorf("health leaks the check's error: %s", r.raw)
		}
		if !strings.Contains(e.logs.String(), "disk I/O error") {
			t.Errorf("the check's error is not logged")
		}
	})
	t.Run("a check hangs", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) {
			c.Checks = map[string]func(context.Context) error{
				"sandbox": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			}
		})
		start := time.Now()
		r := e.do("GET", "/health", nil, nil)
		checks, _ := r.body["checks"].(map[string]any)
		if r.status != 503 || checks["sandbox"] != "unhealthy" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("health took %v", d)
		}
	})
}

func TestRootAndOpenAPI(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("GET", "/", nil, nil)
	if r.status != 200 || r.body["service"] != "libra-deploy" || r.body["version"] != "test" {
		t.Fatalf("GET /: %d %s", r.status, r.raw)
	}
	for _, k := range []string{"message", "status", "timestamp", "architecture", "description", "endpoints"} {
		if r.body[k] == nil {
			t.Errorf("GET / lacks %s", k)
		}
	}
	if _, has := r.body["$schema"]; has {
		t.Errorf("GET / has a $schema field")
	}

	o := e.do("GET", "/openapi.json", nil, nil)
	if o.status != 200 {
		t.Fatalf("openapi: %d", o.status)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Responses map[string]any        `json:"responses"`
			Security  []map[string][]string `json:"security"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(o.raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	deploy, ok := doc.Paths["/deploy"]["post"]
	if !ok {
		t.Fatalf("no POST /deploy in %v", doc.Paths)
	}
	for _, code := range []string{"202", "400", "401", "403", "404", "413", "415", "429"} {
		if deploy.Responses[code] == nil {
			t.Errorf("POST /deploy does not document %s", code)
		}
	}
	if deploy.Responses["422"] != nil {
		t.Errorf("POST /deploy documents 422, which the API never sends")
	}
	if len(deploy.Security) == 0 {
		t.Errorf("POST /deploy has no security requirement")
	}
	for _, p := range []string{"/deploy-status", "/health", "/"} {
		if _, ok := doc.Paths[p]["get"]; !ok {
			t.Errorf("no GET %s", p)
		}
	}
	for _, s := range []string{"DeployRequest", "InitFile", "HistoryMessage", "DiffEntry", "DeploymentStatus", "ErrorResponse"} {
		if doc.Components.Schemas[s] == nil {
			t.Errorf("no schema %s", s)
		}
	}
}

func TestDocs(t *testing.T) {
	e := newEnv(t, nil)
	page := e.do("GET", "/docs", nil, nil)
	if page.status != 200 || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %q", page.status, page.header.Get("Content-Type"))
	}
	if strings.Contains(string(page.raw), "https://") && strings.Contains(string(page.raw), "<script src=\"https") {
		t.Errorf("/docs loads a script from another origin")
	}
	bundle := e.do("GET", "/docs/scalar.js", nil, nil)
	if bundle.status == 404 {
		// Built without `go generate`: the page must say how to get it.
		if !strings.Contains(string(page.raw), "go generate ./api/...") {
			t.Errorf("/docs without the bundle does not explain how to build it: %s", page.raw)
		}
		t.Skip("Scalar bundle not generated; run go generate ./api/... to test it")
	}
	html := string(page.raw)
	for _, want := range []string{`<script src="/docs/scalar.js?v=`, `<script src="/docs/init.js?v=`} {
		if !strings.Contains(html, want) {
			t.Errorf("/docs lacks %s", want)
		}
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if bundle.status != 200 || !strings.HasPrefix(bundle.header.Get("Content-Type"), "text/javascript") ||
		!bytes.Contains(bundle.raw, []byte("createApiReference")) {
		t.Fatalf("/docs/scalar.js: %d %q %d bytes", bundle.status, bundle.header.Get("Content-Type"), len(bundle.raw))
	}
	init := e.do("GET", "/docs/init.js", nil, nil)
	for _, want := range []string{"'/openapi.json'", "withDefaultFonts: false"} {
		if !strings.Contains(string(init.raw), want) {
			t.Errorf("init.js lacks %s: %s", want, init.raw)
		}
	}

	// Gzipped on request, and revalidated by ETag.
	req, _ := http.NewRequest("GET", e.url+"/docs/scalar.js?v=x", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	zipped, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Header.Get("Content-Encoding") != "gzip" || len(zipped) >= len(bundle.raw)/2 {
		t.Fatalf("gzip: encoding %q, %d of %d bytes", res.Header.Get("Content-Encoding"), len(zipped), len(bundle.raw))
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, bundle.raw) {
		t.Errorf("gzipped bundle differs from the plain one")
	}
	if !strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("versioned bundle Cache-Control %q", res.Header.Get("Cache-Control"))
	}
	again := e.do("GET", "/docs/scalar.js", nil, map[string]string{"If-None-Match": bundle.header.Get("ETag")})
	if again.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", again.status)
	}
}

func TestInternalErrorsStayInternal(t *testing.T) {
	e := newEnv(t, nil)
	for _, project := range []string{panicProject, brokenProject} {
		t.Run(project, func(t *testing.T) {
			r := e.deploy(with(map[string]any{"projectId": project}))
			wantError(t, r, 500, "INTERNAL_ERROR")
			for _, leak := range []string{"/var/lib", "disk I/O", "panic", "goroutine", ".go:"} {
				if strings.Contains(string(r.raw), leak) {
					t.Errorf("response leaks %q: %s", leak, r.raw)
				}
			}
			if !strings.Contains(e.logs.String(), "disk I/O error") {
				t.Errorf("the real error is not logged")
			}
		})
	}
	// The server survived the panic.
	if r := e.do("GET", "/health", nil, nil); r.status != 200 {
		t.Errorf("health after panic: %d", r.status)
	}
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, nil)
	e.do("POST", "/deploy?token=querysecret", jsonBody(t, validDeploy()), map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer " + e.tokenA, "X-Request-Id": "trace-1"})
	e.do("GET", "/health", nil, map[string]string{"Cookie": "session=" + e.tokenB})

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == "http request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d access log lines, want 2:\n%s", len(lines), e.logs.String())
	}
	first := lines[0]
	if first["request_id"] != "trace-1" || first["method"] != "POST" || first["path"] != "/deploy" ||
		first["status"] != float64(202) || first["bytes"] == float64(0) || first["duration_ms"] == nil {
		t.Errorf("access log line %v", first)
	}
	all := e.logs.String()
	for _, secret := range []string{e.tokenA, e.tokenB, "querysecret", api.HashToken(e.tokenA)} {
		if strings.Contains(all, secret) {
			t.Errorf("log contains a secret %q", secret)
		}
	}
}

func TestSitesGoFirst(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Sites = fakeSites{} })
	// net/http's client takes the host from the request, not a header.
	req, _ := http.NewRequest("GET", e.url+"/deploy-status", nil)
	req.Host = "proj.localhost"
	req.Header.Set("Origin", "http://localhost:5173")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "site proj.localhost /deploy-status" {
		t.Errorf("site host request: %d %q", res.StatusCode, body)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("site response has CORS headers")
	}
	// Other hosts still reach the API.
	if r := e.do("GET", "/health", nil, nil); r.status != 200 {
		t.Errorf("API behind sites: %d", r.status)
	}
}

type fakeSites struct{}

func (fakeSites) IsSiteHost(host string) bool {
	h, _, _ := strings.Cut(host, ":")
	return strings.HasSuffix(h, ".localhost")
}

func (fakeSites) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "site %s %s", r.Host, r.URL.Path)
}

func TestTokens(t *testing.T) {
	a, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := api.NewToken()
	if a == b || !strings.HasPrefix(a, "ld_") || len(a) < 40 {
		t.Errorf("tokens %q %q", a, b)
	}
	h := api.HashToken(a)
	if len(h) != 64 || h != api.HashToken(a) || h == api.HashToken(b) || strings.Contains(h, a) {
		t.Errorf("hash %q", h)
	}
}

// jobs counts the queue jobs in the database.
func (e *env) jobs() int {
	e.t.Helper()
	var n int
	if err := e.db.Writer.QueryRow(`SELECT count(*) FROM river_job`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestStatusLogLines: the seed's clients print each log line as it is, so
// the line carries its time, step and, when it matters, its level.
func TestStatusLogLines(t *testing.T) {
	e := newEnv(t, nil)
	r := e.deploy(validDeploy())
	id, _ := r.body["deploymentId"].(string)
	at := time.Date(2026, 11, 30, 14, 2, 7, 0, time.UTC)
	tests := []struct {
		entry libra.LogEntry
		want  string
	}{
		{libra.LogEntry{Time: at, Step: libra.StepBuild, Level: "info", Message: "vite build"}, "14:02:07 [build] vite build"},
		{libra.LogEntry{Time: at, Step: libra.StepSync, Level: "warn", Message: "stale lockfile"}, "14:02:07 [sync] WARN: stale lockfile"},
		{libra.LogEntry{Time: at, Step: libra.StepDeploy, Level: "error", Message: "no output"}, "14:02:07 [deploy] ERROR: no output"},
		{libra.LogEntry{Time: at, Level: "info", Message: "queued"}, "14:02:07 queued"},
	}
	for _, tt := range tests {
		if err := e.db.AppendLogs(context.Background(), id, []libra.LogEntry{tt.entry}); err != nil {
			t.Fatal(err)
		}
	}
	s := e.do("GET", "/deploy-status?id="+id, nil, nil)
	logs, _ := s.body["logs"].([]any)
	if len(logs) != len(tests) {
		t.Fatalf("logs = %v, want %d lines", s.body["logs"], len(tests))
	}
	for i, tt := range tests {
		if logs[i] != tt.want {
			t.Errorf("line %d = %q, want %q", i, logs[i], tt.want)
		}
	}
}
