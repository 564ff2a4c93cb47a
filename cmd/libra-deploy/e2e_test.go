package main_test

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

func TestPublicRoutes(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		method, path string
		status       int
		want         string // a substring of the body
	}{
		{"GET", "/", 200, `"service":"libra-deploy"`},
		{"GET", "/health", 200, `"status":"healthy"`},
		{"GET", "/openapi.json", 200, `"openapi":"3.1`},
		{"GET", "/docs", 200, "<html"},
		{"GET", "/no/such/route", 404, `"error":"NOT_FOUND"`},
		{"DELETE", "/deploy", 405, `"error":"METHOD_NOT_ALLOWED"`},
		{"GET", "/deploy-status?id=aaaaaaaaaaaaaaaaaaaaaaaaaa", 404, `"error":"DEPLOYMENT_NOT_FOUND"`},
		{"GET", "/deploy-status?id=../../etc", 404, `"error":"DEPLOYMENT_NOT_FOUND"`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := s.do(tt.method, tt.path, nil)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("got %d %.300s; want %d containing %s", r.status, r.body, tt.status, tt.want)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id")
			}
			if r.status >= 400 && (r.json["success"] != false || r.str("message") == "" || r.str("timestamp") == "") {
				t.Fatalf("error not in the unified format: %s", r.body)
			}
		})
	}
	r := s.do("GET", "/health", nil)
	checks, _ := r.json["checks"].(map[string]any)
	if checks["database"] != "healthy" || checks["queue"] != "healthy" {
		t.Fatalf("health checks missing or not \"healthy\": %s", r.body)
	}
	r = s.do("GET", "/", nil, "X-Request-Id", "my-trace-123")
	if got := r.header.Get("X-Request-Id"); got != "my-trace-123" {
		t.Fatalf("incoming request id not kept: %q", got)
	}
}

func TestDeployStaticSiteEndToEnd(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "website")
	png := []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff}
	body := map[string]any{
		"projectId": "website", "orgId": "acme", "userId": "user-acme",
		"initFiles": []map[string]any{
			{"path": "index.html", "content": "<!doctype html><h1>v1</h1>"},
			{"path": "about/index.html", "content": "<h1>about</h1>"},
			{"path": "style.css", "content": "h1{color:red}"},
			{"path": "logo.png", "content": base64.StdEncoding.EncodeToString(png), "encoding": "base64"},
			{"path": "old.txt", "content": "to be deleted"},
		},
		"historyMessages": []map[string]any{
			{"role": "user", "content": "make it v2"},
			{"role": "assistant", "content": "done", "diff": []map[string]any{
				{"path": "index.html", "type": "edit", "modified": "<!doctype html><h1>v2</h1>"},
				{"path": "old.txt", "type": "delete"},
				{"path": "new.js", "type": "create", "modified": "console.log(1)"},
			}},
		},
	}
	r := s.deploy(tok, body)
	if r.status != 202 || r.json["success"] != true || r.str("status") != "queued" || r.str("deploymentId") == "" {
		t.Fatalf("POST /deploy: %d %s", r.status, r.body)
	}
	id := r.str("deploymentId")
	if !regexp.MustCompile(`^[a-z0-9]{20,63}$`).MatchString(id) {
		t.Fatalf("deployment id %q is not a lowercase host label", id)
	}
	st := s.waitFinal(id, 20*time.Second)
	if st.str("status") != "completed" {
		t.Fatalf("deployment failed: %s", st.body)
	}
	for _, step := range []string{"validate", "sync", "sandbox", "build", "deploy", "cleanup"} {
		if got := stepStatus(st, step); got != "completed" {
			t.Errorf("step %s is %q", step, got)
		}
	}
	if st.json["progress"] != float64(100) {
		t.Errorf("progress %v", st.json["progress"])
	}
	// The immutable URL has a label of its own: the id is the key to the
	// status and the log, and a preview link must not give it away.
	wantURL := regexp.MustCompile(`^http://website--[a-z2-7]{13}\.localhost:` + s.port + `/$`)
	if !wantURL.MatchString(st.str("url")) || strings.Contains(st.str("url"), id) {
		t.Errorf("url %q, want %s without the deployment id", st.str("url"), wantURL)
	}
	logs, _ := st.json["logs"].([]any)
	if len(logs) < 6 {
		t.Errorf("only %d log lines", len(logs))
	}
	// The seed's clients print logs as they are: lines of text.
	for _, l := range logs {
		if line, ok := l.(string); !ok || !logLine.MatchString(line) {
			t.Errorf("log line %#v is not \"hh:mm:ss [step] message\"", l)
		}
	}
	if r := s.do("GET", "/deploy-log?id="+id, nil, "Authorization", "Bearer "+tok); r.status != 404 || r.str("error") != "DEPLOYMENT_NOT_FOUND" {
		t.Errorf("a static site has no full build log: %d %s", r.status, r.body)
	}

	hosts := []string{s.siteHost(id), "website.localhost:" + s.port}
	for _, host := range hosts {
		tests := []struct {
			path, status, ctype, body string
		}{
			{"/", "200", "text/html", "<h1>v2</h1>"},
			{"/about/", "200", "text/html", "about"},
			{"/style.css", "200", "text/css", "color:red"},
			{"/logo.png", "200", "image/png", string(png)},
			{"/new.js", "200", "javascript", "console.log(1)"},
			{"/old.txt", "404", "", ""},
			{"/missing.css", "404", "", ""},
			{"/no-such-page", "404", "", ""}, // a plain site is no single-page app
		}
		for _, tt := range tests {
			r := s.do("GET", tt.path, nil, "Host", host)
			if fmt.Sprint(r.status) != tt.status || !strings.Contains(r.header.Get("Content-Type"), tt.ctype) || !strings.Contains(string(r.body), tt.body) {
				t.Errorf("%s%s: %d %q %.100q", host, tt.path, r.status, r.header.Get("Content-Type"), r.body)
			}
		}
	}
	// The old cleanup must have removed the working directory.
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "1 used") {
		t.Errorf("quota show: %q", out)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "site")
	s.admin("quota", "set", "--org", "acme", "--limit", "100")
	ok := func(mut func(b map[string]any)) map[string]any {
		b := staticSite("acme", "site", 2)
		mut(b)
		return b
	}
	file := func(p string) map[string]any { return map[string]any{"path": p, "content": "x"} }
	many := make([]map[string]any, 10_001)
	for i := range many {
		many[i] = file(fmt.Sprintf("f%d.txt", i))
	}
	tests := []struct {
		name   string
		body   any
		ctype  string
		status int
		code   string
	}{
		{"broken json", `{"projectId": "site",`, "application/json", 400, "VALIDATION_ERROR"},
		{"wrong content type", `projectId=site`, "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"missing projectId", ok(func(b map[string]any) { delete(b, "projectId") }), "", 400, "VALIDATION_ERROR"},
		{"empty orgId", ok(func(b map[string]any) { b["orgId"] = "" }), "", 400, "VALIDATION_ERROR"},
		{"id with slash", ok(func(b map[string]any) { b["userId"] = "a/b" }), "", 400, "VALIDATION_ERROR"},
		{"id too long", ok(func(b map[string]any) { b["userId"] = strings.Repeat("u", 129) }), "", 400, "VALIDATION_ERROR"},
		{"dotdot path", ok(func(b map[string]any) { b["initFiles"] = []any{file("../etc/passwd")} }), "", 400, "VALIDATION_ERROR"},
		{"absolute path", ok(func(b map[string]any) { b["initFiles"] = []any{file("/etc/passwd")} }), "", 400, "VALIDATION_ERROR"},
		{"backslash path", ok(func(b map[string]any) { b["initFiles"] = []any{file(`a\b`)} }), "", 400, "VALIDATION_ERROR"},
		{"nul path", ok(func(b map[string]any) { b["initFiles"] = []any{file("a\x00b")} }), "", 400, "VALIDATION_ERROR"},
		{"long path", ok(func(b map[string]any) { b["initFiles"] = []any{file(strings.Repeat("p", 1025))} }), "", 400, "VALIDATION_ERROR"},
		{"duplicate path", ok(func(b map[string]any) { b["initFiles"] = []any{file("a.txt"), file("a.txt")} }), "", 400, "VALIDATION_ERROR"},
		{"bad base64", ok(func(b map[string]any) {
			b["initFiles"] = []any{map[string]any{"path": "a.bin", "content": "!!!", "encoding": "base64"}}
		}), "", 400, "VALIDATION_ERROR"},
		{"bad role", ok(func(b map[string]any) { b["historyMessages"] = []any{map[string]any{"role": "system", "content": "x"}} }), "", 400, "VALIDATION_ERROR"},
		{"domain is ip", ok(func(b map[string]any) { b["customDomain"] = "10.0.0.1" }), "", 400, "VALIDATION_ERROR"},
		{"domain under sites domain", ok(func(b map[string]any) { b["customDomain"] = "evil.localhost" }), "", 400, "VALIDATION_ERROR"},
		{"domain invalid", ok(func(b map[string]any) { b["customDomain"] = "not a domain" }), "", 400, "VALIDATION_ERROR"},
		{"too many files", ok(func(b map[string]any) { b["initFiles"] = many }), "", 413, "PAYLOAD_TOO_LARGE"},
		{"file too large", ok(func(b map[string]any) {
			b["initFiles"] = []any{map[string]any{"path": "big.txt", "content": strings.Repeat("x", 25<<20+1)}}
		}), "", 413, "PAYLOAD_TOO_LARGE"},
		{"body too large", ok(func(b map[string]any) {
			b["initFiles"] = []any{file("a.txt"), map[string]any{"path": "b.txt", "content": strings.Repeat("y", 51<<20)}}
		}), "", 413, "PAYLOAD_TOO_LARGE"},
		{"unknown project", ok(func(b map[string]any) { b["projectId"] = "nope" }), "", 404, "PROJECT_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := []string{"Authorization", "Bearer " + tok}
			var r response
			if str, isStr := tt.body.(string); isStr {
				r = rawPost(t, s, str, tt.ctype, tok)
			} else {
				r = s.do("POST", "/deploy", tt.body, h...)
			}
			if r.status != tt.status || r.str("error") != tt.code || r.json["success"] != false || r.str("message") == "" {
				t.Fatalf("got %d %.300s; want %d %s", r.status, r.body, tt.status, tt.code)
			}
			if strings.Contains(string(r.body), s.dataDir) || strings.Contains(string(r.body), "goroutine") {
				t.Fatalf("response leaks internals: %.300s", r.body)
			}
		})
	}
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "0 used") {
		t.Fatalf("bad requests changed the quota: %q", out)
	}
	if n := countRows(t, s, "SELECT count(*) FROM deployments"); n != 0 {
		t.Fatalf("bad requests created %d deployments", n)
	}
}

func rawPost(t *testing.T, s *server, body, ctype, tok string) response {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/deploy", strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

func countRows(t *testing.T, s *server, query string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+s.dataDir+"/libra.db?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAuthMatrix(t *testing.T) {
	s := startServer(t)
	acme := s.setup("acme", "acme-site")
	globex := s.setup("globex", "globex-site")
	tests := []struct {
		name   string
		header []string
		body   map[string]any
		status int
		code   string
	}{
		{"no token", nil, staticSite("acme", "acme-site", 1), 401, "UNAUTHORIZED"},
		{"bad token", []string{"Authorization", "Bearer nope"}, staticSite("acme", "acme-site", 1), 401, "UNAUTHORIZED"},
		{"bad scheme", []string{"Authorization", "Basic " + acme}, staticSite("acme", "acme-site", 1), 401, "UNAUTHORIZED"},
		{"other org in body", []string{"Authorization", "Bearer " + globex}, staticSite("acme", "acme-site", 1), 403, "FORBIDDEN"},
		{"project of other org", []string{"Authorization", "Bearer " + globex}, staticSite("globex", "acme-site", 1), 403, "FORBIDDEN"},
		{"another user's userId", []string{"Authorization", "Bearer " + acme}, withUser(staticSite("acme", "acme-site", 1), "user-mallory"), 403, "FORBIDDEN"},
		{"bearer ok", []string{"Authorization", "Bearer " + acme}, staticSite("acme", "acme-site", 1), 202, ""},
		{"cookie ok", []string{"Cookie", "session=" + globex}, staticSite("globex", "globex-site", 1), 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("POST", "/deploy", tt.body, tt.header...)
			if r.status != tt.status || r.str("error") != tt.code {
				t.Fatalf("got %d %.300s; want %d %s", r.status, r.body, tt.status, tt.code)
			}
		})
	}
	// POST /projects creates in the token's org only.
	r := s.do("POST", "/projects", map[string]any{"id": "new-one"}, "Authorization", "Bearer "+acme)
	if r.status != 201 {
		t.Fatalf("POST /projects: %d %s", r.status, r.body)
	}
	if r = s.do("POST", "/projects", map[string]any{"id": "new-one"}, "Authorization", "Bearer "+acme); r.status != 409 {
		t.Fatalf("duplicate project: %d %s", r.status, r.body)
	}
	if r = s.do("POST", "/deploy", staticSite("globex", "new-one", 1), "Authorization", "Bearer "+globex); r.status != 403 {
		t.Fatalf("deploy to another org's new project: %d %s", r.status, r.body)
	}
	// No token, cookie or secret in the server's log.
	logs := s.logs.String()
	for _, secret := range []string{acme, globex} {
		if strings.Contains(logs, secret) {
			t.Fatal("a token appears in the server log")
		}
	}
	if !strings.Contains(logs, `"method":"POST"`) || !strings.Contains(logs, `"status":202`) {
		t.Fatalf("no request log lines: %s", tail(logs, 2000))
	}
}

// withUser sets the body's userId (issue 8, finding 13: it must be the
// token's user).
func withUser(body map[string]any, user string) map[string]any {
	body["userId"] = user
	return body
}

func TestRateLimitAndCORS(t *testing.T) {
	s := startServer(t, "RATE_LIMIT_RPS=1", "RATE_LIMIT_BURST=3")
	tok := s.setup("acme", "site")
	var limited response
	for i := 0; i < 6; i++ {
		r := s.deploy(tok, staticSite("acme", "site", 1))
		if r.status == 429 {
			limited = r
			break
		}
	}
	if limited.status != 429 || limited.str("error") != "RATE_LIMITED" || limited.header.Get("Retry-After") == "" {
		t.Fatalf("no 429 with Retry-After: %d %s %v", limited.status, limited.body, limited.header)
	}

	pre := func(origin string) http.Header {
		req, _ := http.NewRequest("OPTIONS", s.url+"/deploy", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	for origin, allowed := range map[string]bool{
		"http://localhost:5173": true, "https://libra.dev": true, "https://evil.example": false, "http://localhost.evil.com": false,
	} {
		got := pre(origin).Get("Access-Control-Allow-Origin")
		if allowed && got != origin || !allowed && got != "" {
			t.Errorf("origin %s: Access-Control-Allow-Origin %q", origin, got)
		}
	}
}

func TestQuotaExactAndRetriesDeductNothing(t *testing.T) {
	// The sync step fails once as a platform fault, then succeeds: every
	// deployment is retried, and must still cost one unit of quota.
	s := startServer(t, "LIBRA_TEST_HOOKS=sync:transient:1")
	tok := s.setup("acme", "site")
	s.admin("quota", "set", "--org", "acme", "--limit", "3")
	var ids []string
	for i := 0; i < 3; i++ {
		r := s.deploy(tok, staticSite("acme", "site", 1))
		if r.status != 202 {
			t.Fatalf("deployment %d: %d %s", i+1, r.status, r.body)
		}
		ids = append(ids, r.str("deploymentId"))
	}
	r := s.deploy(tok, staticSite("acme", "site", 1))
	if r.status != 429 || r.str("error") != "QUOTA_EXCEEDED" {
		t.Fatalf("4th deployment: %d %s", r.status, r.body)
	}
	for _, id := range ids {
		st := s.waitFinal(id, 20*time.Second)
		if st.str("status") != "completed" || !strings.Contains(string(st.body), "attempt 1 of 3 failed") {
			t.Fatalf("deployment %s: %s", id, st.body)
		}
	}
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "3 used") {
		t.Fatalf("after retries: %q", out)
	}
	if n := countRows(t, s, "SELECT count(*) FROM deployments"); n != 3 {
		t.Fatalf("%d deployments rows, want 3", n)
	}
}

var logLine = regexp.MustCompile(`^\d\d:\d\d:\d\d \[(validate|sync|sandbox|build|deploy|cleanup)\]( WARN:| ERROR:)? \S`)

func TestPermanentFailureNotRetried(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "site")
	s.admin("quota", "set", "--org", "acme", "--limit", "5")
	// A build script that fails on its own: the user's fault.
	body := map[string]any{"projectId": "site", "orgId": "acme", "userId": "user-acme", "initFiles": []any{
		map[string]any{"path": "package.json", "content": `{"name":"x","scripts":{"build":"echo compiling; exit 3"}}`},
		map[string]any{"path": "index.html", "content": "x"},
	}}
	st := s.waitFinal(s.deploy(tok, body).str("deploymentId"), 60*time.Second)
	if st.str("status") != "failed" || stepStatus(st, "build") != "failed" || stepStatus(st, "cleanup") != "completed" ||
		!strings.Contains(st.str("error"), "exit code 3") || !strings.Contains(st.str("error"), "compiling") {
		t.Fatalf("build project: %s", st.body)
	}
	if n := countRows(t, s, "SELECT max(attempt) FROM deployments"); n != 1 {
		t.Fatalf("permanent failure ran %d attempts", n)
	}
	if out := s.admin("dlq", "list"); !strings.Contains(out, "dead-letter queue deployment-dlq: 0 deployments") {
		t.Fatalf("permanent failure in the dead-letter list: %q", out)
	}
	// The user's fault: the quota is not given back.
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "1 used") {
		t.Fatalf("quota: %q", out)
	}
}

func TestDeadLetterAndRetry(t *testing.T) {
	// Project "doomed" fails as a platform fault on attempts 1-3: all of its
	// attempts. `dlq retry` grants a 4th, which succeeds.
	s := startServer(t, "LIBRA_TEST_HOOKS=sync@doomed:transient:3")
	tok := s.setup("acme", "doomed")
	s.admin("quota", "set", "--org", "acme", "--limit", "5")
	id := s.deploy(tok, staticSite("acme", "doomed", 1)).str("deploymentId")
	st := s.waitFinal(id, 30*time.Second)
	if st.str("status") != "failed" || !strings.Contains(st.str("error"), "after 3 attempts") ||
		!strings.Contains(string(st.body), `the dead-letter queue \"deployment-dlq\"`) {
		t.Fatalf("deployment: %s", st.body)
	}
	// A platform failure gives the quota back.
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "0 used") {
		t.Fatalf("quota after platform failure: %q", out)
	}
	var list string
	for i := 0; i < 100 && !strings.Contains(list, id); i++ {
		time.Sleep(50 * time.Millisecond) // the job is discarded just after the deployment is saved
		list = s.admin("dlq", "list")
	}
	if !strings.Contains(list, id) || !strings.Contains(list, "injected platform fault") || !strings.Contains(list, ": 1 deployments") {
		t.Fatalf("dlq list: %q", list)
	}
	if out := s.admin("dlq", "retry", id); !strings.Contains(out, "re-queued") {
		t.Fatalf("dlq retry: %q", out)
	}
	st = s.waitFinal(id, 20*time.Second)
	if st.str("status") != "completed" {
		t.Fatalf("after dlq retry: %s", st.body)
	}
	if out := s.admin("dlq", "list"); strings.Contains(out, id) {
		t.Fatalf("still dead-lettered: %q", out)
	}
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "1 used") {
		t.Fatalf("quota after retry: %q", out)
	}
}

func TestSIGKILLMidDeploymentLeavesNothingStuck(t *testing.T) {
	s := startServer(t, "LIBRA_TEST_HOOKS=build:sleep:3s", "MAX_CONCURRENT_DEPLOYMENTS=2")
	tok := s.setup("acme", "site")
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, s.deploy(tok, staticSite("acme", "site", 2)).str("deploymentId"))
	}
	s.waitFor(ids[0], 10*time.Second, func(r response) bool { return r.str("currentStep") == "build" })
	s.kill()

	s.env = nil // no more slow builds
	s.start()
	// At least the deployment that was building was running when killed
	// (the second slot may not have been filled yet on a loaded machine).
	s.waitLog(regexp.MustCompile(`"jobs_requeued":[12]\b`), 5*time.Second)
	for _, id := range ids {
		if st := s.waitFinal(id, 30*time.Second); st.str("status") != "completed" {
			t.Fatalf("deployment %s after restart: %s", id, st.body)
		}
	}
	// River records job completion in batches, just after the work ends.
	n := -1
	for i := 0; i < 50 && n != 0; i++ {
		n = countRows(t, s, "SELECT count(*) FROM river_job WHERE state != 'completed'")
		time.Sleep(50 * time.Millisecond)
	}
	if n != 0 {
		t.Fatalf("%d jobs left unfinished", n)
	}
}

func TestGracefulShutdown(t *testing.T) {
	s := startServer(t, "LIBRA_TEST_HOOKS=build:sleep:5s", "SHUTDOWN_GRACE_MS=1000")
	tok := s.setup("acme", "site")
	id := s.deploy(tok, staticSite("acme", "site", 1)).str("deploymentId")
	s.waitFor(id, 10*time.Second, func(r response) bool { return r.str("currentStep") == "build" })
	start := time.Now()
	if err := s.stop(15 * time.Second); err != nil {
		t.Fatalf("serve exited with %v after SIGTERM:\n%s", err, tail(s.logs.String(), 2000))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s, grace is 1s", d)
	}
	// The interrupted deployment went back to the queue, not to failed.
	if n := countRows(t, s, "SELECT count(*) FROM deployments WHERE status = 'queued'"); n != 1 {
		t.Fatalf("interrupted deployment not queued:\n%s", tail(s.logs.String(), 2000))
	}
	s.env = nil
	s.start()
	if st := s.waitFinal(id, 20*time.Second); st.str("status") != "completed" {
		t.Fatalf("after restart: %s", st.body)
	}
}

func TestTwoHundredConcurrentDeployments(t *testing.T) {
	const n, maxConcurrent = 200, 5
	s := startServer(t, "LIBRA_TEST_HOOKS=build:sleep:20ms", fmt.Sprintf("MAX_CONCURRENT_DEPLOYMENTS=%d", maxConcurrent),
		"RATE_LIMIT_RPS=10000", "RATE_LIMIT_BURST=10000")
	tok := s.setup("acme", "site")
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.deploy(tok, staticSite("acme", "site", 3))
			if r.status != 202 {
				errs <- fmt.Sprintf("%d %s", r.status, r.body)
				return
			}
			ids[i] = r.str("deploymentId")
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("POST /deploy: %s", e)
	}
	for _, id := range ids {
		if st := s.waitFinal(id, 60*time.Second); st.str("status") != "completed" {
			t.Fatalf("deployment %s: %s", id, st.body)
		}
	}
	// Measured: the most deployments that were running at one instant,
	// from each one's recorded start and finish.
	db, err := sql.Open("sqlite", "file:"+s.dataDir+"/libra.db?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT started_at, finished_at FROM deployments")
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for rows.Next() {
		var a, b int64
		if err := rows.Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev{a, 1}, ev{b, -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		return evs[i].at < evs[j].at || evs[i].at == evs[j].at && evs[i].delta < evs[j].delta
	})
	cur, peak := 0, 0
	for _, e := range evs {
		cur += e.delta
		peak = max(peak, cur)
	}
	t.Logf("%d deployments, peak concurrency %d (limit %d)", len(evs)/2, peak, maxConcurrent)
	if len(evs)/2 != n {
		t.Fatalf("%d deployments recorded, want %d", len(evs)/2, n)
	}
	if peak > maxConcurrent || peak < 2 {
		t.Fatalf("peak concurrency %d, limit %d", peak, maxConcurrent)
	}
}
