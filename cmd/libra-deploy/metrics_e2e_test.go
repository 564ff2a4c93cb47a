package main_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

const testAdminToken = "adm_0123456789abcdef0123456789abcdef"

// scrape parses a /metrics body with Prometheus's own text parser.
func scrape(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, tail(string(body), 2000))
	}
	return families
}

// metricValue returns the value of the series of name whose labels include
// labels (name=value pairs): a counter's or gauge's value, a histogram's
// sample count. ok is false when there is no such series.
func metricValue(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.Label {
			found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
		}
		if !found {
			return false
		}
	}
	return true
}

// siteGet fetches path from a deployment's site with client, uncompressed,
// so that the body read is the bytes the server counts.
func siteGet(t *testing.T, client *http.Client, s *server, id, path string) (int, int) {
	t.Helper()
	req, err := http.NewRequest("GET", s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = s.siteHost(id)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("site GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, len(b)
}

// siteClients are the two ways a site request is served: a fresh
// connection takes the fast loop; one that asked the API first was handed
// over to net/http.
func siteClients(t *testing.T, s *server) map[string]*http.Client {
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	handedOver := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	t.Cleanup(handedOver.CloseIdleConnections)
	resp, err := handedOver.Get(s.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return map[string]*http.Client{"fast loop": fresh, "net/http": handedOver}
}

// scrapeWhen scrapes /metrics until ready accepts it: River records a
// job's completion a moment after the deployment's final state.
func scrapeWhen(t *testing.T, s *server, ready func(map[string]*dto.MetricFamily) bool) (map[string]*dto.MetricFamily, response) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.do("GET", "/metrics", nil, "Authorization", "Bearer "+testAdminToken)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("/metrics: %d %s %s", r.status, r.header.Get("Content-Type"), tail(string(r.body), 500))
		}
		families := scrape(t, r.body)
		if ready(families) || time.Now().After(deadline) {
			return families, r
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func queueSettled(families map[string]*dto.MetricFamily) bool {
	running, _ := metricValue(families, "libra_queue_jobs", "state", "running")
	available, _ := metricValue(families, "libra_queue_jobs", "state", "available")
	return running == 0 && available == 0
}

// TestMetricsCountWhatTheTestDid accepts four deployments, one of which
// fails, fetches their sites, and checks /metrics says exactly that.
func TestMetricsCountWhatTheTestDid(t *testing.T) {
	s := startServer(t, "ADMIN_TOKEN="+testAdminToken, "LIBRA_TEST_HOOKS=validate@broken:permanent")
	tok := s.setup("acme", "good")
	s.admin("project", "create", "--org", "acme", "--id", "broken")
	var good []string
	for range 3 {
		r := s.deploy(tok, staticSite("acme", "good", 3))
		if r.status != 202 {
			t.Fatalf("deploy: %d %s", r.status, r.body)
		}
		good = append(good, r.str("deploymentId"))
	}
	bad := s.deploy(tok, staticSite("acme", "broken", 1))
	if bad.status != 202 {
		t.Fatalf("deploy: %d %s", bad.status, bad.body)
	}
	for _, id := range good {
		if st := s.waitFinal(id, 60*time.Second); st.str("status") != "completed" {
			t.Fatalf("deployment %s: %s", id, st.body)
		}
	}
	if st := s.waitFinal(bad.str("deploymentId"), 60*time.Second); st.str("status") != "failed" {
		t.Fatalf("broken deployment: %s", st.body)
	}
	var bodyBytes int
	for way, client := range siteClients(t, s) {
		for _, req := range []struct {
			path   string
			status int
		}{{"/", 200}, {"/assets/file-1.css", 200}, {"/no-such-file.js", 404}} {
			status, n := siteGet(t, client, s, good[0], req.path)
			if status != req.status {
				t.Fatalf("site GET %s (%s): %d, want %d", req.path, way, status, req.status)
			}
			bodyBytes += n
		}
	}
	families, r := scrapeWhen(t, s, queueSettled)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"libra_deployments_accepted_total", nil, 4},
		{"libra_deployments_finished_total", []string{"status", "completed"}, 3},
		{"libra_deployments_finished_total", []string{"status", "failed"}, 1},
		{"libra_deployment_pickup_latency_seconds", nil, 4},
		{"libra_deployment_step_duration_seconds", []string{"step", "validate", "outcome", "ok"}, 3},
		{"libra_deployment_step_duration_seconds", []string{"step", "validate", "outcome", "error"}, 1},
		{"libra_deployment_step_duration_seconds", []string{"step", "deploy", "outcome", "ok"}, 3},
		{"libra_site_requests_total", []string{"class", "2xx"}, 4},
		{"libra_site_requests_total", []string{"class", "4xx"}, 2},
		{"libra_site_requests_total", []string{"class", "5xx"}, 0},
		{"libra_site_response_bytes_total", nil, float64(bodyBytes)},
		{"libra_queue_jobs", []string{"state", "running"}, 0},
		{"libra_queue_jobs", []string{"state", "available"}, 0},
		{"libra_queue_scrape_error", nil, 0},
	} {
		got, ok := metricValue(families, c.name, c.labels...)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Every job is in a final state; River may have completed the failed
	// one's as cancelled or discarded, so only the total is fixed.
	var jobs float64
	for _, m := range families["libra_queue_jobs"].GetMetric() {
		jobs += m.Gauge.GetValue()
	}
	if jobs != 4 {
		t.Errorf("libra_queue_jobs sums to %v, want 4", jobs)
	}
	rss, _ := metricValue(families, "process_resident_memory_bytes")
	fds, _ := metricValue(families, "process_open_fds")
	goroutines, ok := metricValue(families, "go_goroutines")
	if !ok || goroutines == 0 {
		t.Errorf("no Go runtime metrics")
	}
	if rss == 0 || rss > 500<<20 || fds == 0 || fds > 500 {
		t.Errorf("process figures out of bounds: RSS %.1f MB, %v fds", rss/(1<<20), fds)
	}
	t.Logf("after 4 deployments: RSS %.1f MB, %v open fds, %v goroutines, /metrics %d bytes, %d families",
		rss/(1<<20), fds, goroutines, len(r.body), len(families))
	for _, line := range strings.Split(string(r.body), "\n") {
		if strings.Contains(line, "acme") || strings.Contains(line, good[0]) {
			t.Errorf("a per-org or per-deployment label leaked into /metrics: %s", line)
		}
	}
}

// wantUnifiedError checks a refusal is in the API's error format.
func wantUnifiedError(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.json["success"] != false || r.str("error") != code || r.str("message") == "" || r.str("timestamp") == "" {
		t.Errorf("%s: %d %s, want %d with error %q in the unified format", what, r.status, r.body, status, code)
	}
}

// TestAdminRoutesNeedTheAdminToken: /metrics and the queue console answer
// only to ADMIN_TOKEN or a `token create --admin` token; a user token is
// known but refused.
func TestAdminRoutesNeedTheAdminToken(t *testing.T) {
	s := startServer(t, "ADMIN_TOKEN="+testAdminToken)
	tok := s.setup("acme", "site")
	adminTok := s.admin("token", "create", "--org", "ops", "--user", "oncall", "--admin")
	r := s.deploy(tok, staticSite("acme", "site", 1))
	if st := s.waitFinal(r.str("deploymentId"), 60*time.Second); st.str("status") != "completed" {
		t.Fatalf("deployment: %s", st.body)
	}
	for _, path := range []string{"/metrics", "/admin/queue/", "/admin/queue/api/jobs?state=completed"} {
		for _, c := range []struct {
			name   string
			header []string
			status int
			code   string
		}{
			{"no credential", nil, 401, "UNAUTHORIZED"},
			{"wrong token", []string{"Authorization", "Bearer " + testAdminToken + "x"}, 401, "UNAUTHORIZED"},
			{"not bearer", []string{"Authorization", "Basic " + testAdminToken}, 401, "UNAUTHORIZED"},
			{"user token", []string{"Authorization", "Bearer " + tok}, 403, "FORBIDDEN"},
			{"admin token as cookie of another name", []string{"Cookie", "admin=" + testAdminToken}, 401, "UNAUTHORIZED"},
		} {
			wantUnifiedError(t, path+" with "+c.name, s.do("GET", path, nil, c.header...), c.status, c.code)
		}
		for _, admin := range []string{testAdminToken, adminTok} {
			ok := s.do("GET", path, nil, "Authorization", "Bearer "+admin)
			if ok.status != 200 || len(ok.body) == 0 {
				t.Errorf("%s with an admin token: %d %s", path, ok.status, tail(string(ok.body), 300))
			}
		}
	}
	// The console can cancel jobs: a browser on another site may not
	// drive it with the admin's cookie.
	wantUnifiedError(t, "cross-site POST to the console", s.do("POST", "/admin/queue/api/jobs/cancel", `{"job_ids":["1"]}`,
		"Cookie", "session="+testAdminToken, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"), 403, "FORBIDDEN")
	console := s.do("GET", "/admin/queue/", nil, "Authorization", "Bearer "+testAdminToken)
	if !strings.Contains(string(console.body), "<html") {
		t.Errorf("queue console page is not HTML: %s", tail(string(console.body), 300))
	}
	// River records the job's completion a moment after the deployment's.
	deadline := time.Now().Add(30 * time.Second)
	for {
		jobs := s.do("GET", "/admin/queue/api/jobs?state=completed", nil, "Authorization", "Bearer "+testAdminToken)
		data, _ := jobs.json["data"].([]any)
		if len(data) == 1 {
			break
		}
		if jobs.status != 200 || len(data) > 1 || time.Now().After(deadline) {
			t.Fatalf("queue console lists %d completed jobs, want 1: %d %s", len(data), jobs.status, tail(string(jobs.body), 500))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if logs := s.logs.String(); strings.Contains(logs, testAdminToken) || strings.Contains(logs, adminTok) {
		t.Errorf("an admin token appears in the server's log")
	}
}

// TestAdminTokenWithoutAdminToken: with ADMIN_TOKEN unset, a token made
// with --admin still opens the admin routes and nothing else does.
func TestAdminTokenWithoutAdminToken(t *testing.T) {
	s := startServer(t)
	user := s.setup("acme", "site")
	admin := s.admin("token", "create", "--org", "ops", "--user", "oncall", "--admin")
	wantUnifiedError(t, "user token", s.do("GET", "/metrics", nil, "Authorization", "Bearer "+user), 403, "FORBIDDEN")
	wantUnifiedError(t, "empty bearer", s.do("GET", "/metrics", nil, "Authorization", "Bearer "), 401, "UNAUTHORIZED")
	if r := s.do("GET", "/metrics", nil, "Authorization", "Bearer "+admin); r.status != 200 {
		t.Errorf("admin token: %d %s", r.status, tail(string(r.body), 300))
	}
}

// TestMetricsAddrListener: METRICS_ADDR serves /metrics without
// authentication, and the API's /metrics still needs the admin token.
func TestMetricsAddrListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := startServer(t, "ADMIN_TOKEN="+testAdminToken, "METRICS_ADDR="+addr)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET METRICS_ADDR/metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("METRICS_ADDR /metrics: %d %s", resp.StatusCode, body)
	}
	if _, ok := metricValue(scrape(t, body), "libra_deployments_accepted_total"); !ok {
		t.Errorf("METRICS_ADDR /metrics lacks libra_deployments_accepted_total")
	}
	wantUnifiedError(t, "API /metrics without auth", s.do("GET", "/metrics", nil), 401, "UNAUTHORIZED")
	if r := s.do("GET", "/metrics", nil, "Authorization", "Bearer "+testAdminToken); r.status != 200 {
		t.Errorf("API /metrics with the admin token: %d", r.status)
	}
}

// TestPostgresMetricsAndQueueConsole: the queue depth and River's console
// work over PostgreSQL too (riverpgxv5).
func TestPostgresMetricsAndQueueConsole(t *testing.T) {
	dbURL := pgtest.Database(t, pgTemplate)
	s := startServer(t, "POSTGRES_URL="+dbURL, "ADMIN_TOKEN="+testAdminToken)
	tok := pgAdmin(t, s, dbURL, "token", "create", "--org", "acme", "--user", "user-acme")
	pgAdmin(t, s, dbURL, "project", "create", "--org", "acme", "--id", "website")
	r := s.deploy(tok, staticSite("acme", "website", 2))
	if st := s.waitFinal(r.str("deploymentId"), 30*time.Second); st.str("status") != "completed" {
		t.Fatalf("deployment: %s", st.body)
	}
	families, _ := scrapeWhen(t, s, func(f map[string]*dto.MetricFamily) bool {
		n, _ := metricValue(f, "libra_queue_jobs", "state", "completed")
		return n == 1
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"libra_queue_jobs", []string{"state", "completed"}, 1},
		{"libra_queue_scrape_error", nil, 0},
		{"libra_deployments_accepted_total", nil, 1},
		{"libra_deployments_finished_total", []string{"status", "completed"}, 1},
	} {
		if got, ok := metricValue(families, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	wantUnifiedError(t, "console without auth", s.do("GET", "/admin/queue/api/jobs?state=completed", nil), 401, "UNAUTHORIZED")
	jobs := s.do("GET", "/admin/queue/api/jobs?state=completed", nil, "Authorization", "Bearer "+testAdminToken)
	if data, _ := jobs.json["data"].([]any); jobs.status != 200 || len(data) != 1 {
		t.Errorf("queue console on PostgreSQL: %d %s", jobs.status, tail(string(jobs.body), 500))
	}
}

// TestMetricsBuildCacheHitAndMiss: the first install of a lockfile-less
// dependency set misses the org's cache, the second deployment hits it.
func TestMetricsBuildCacheHitAndMiss(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	s := startServer(t, append([]string{"ADMIN_TOKEN=" + testAdminToken}, noLimit...)...)
	tok := s.setup("acme", "cached")
	app := files(
		"package.json", `{"name": "app", "private": true, "version": "1.0.0", "dependencies": {"ms": "2.1.3"}, "scripts": {"build": "node build.js"}}`,
		"build.js", `const fs = require("fs"); fs.mkdirSync("dist"); fs.writeFileSync("dist/index.html", require("ms")(60000) + "");`)
	// The second has a file of its own, so it builds (restoring
	// node_modules) instead of reusing the first's output; the third is
	// the second again, and publishes the second's build.
	for i, f := range [][]map[string]any{app, append(app, files("notes.txt", "2")...), append(app, files("notes.txt", "2")...)} {
		if st := deployAndWait(t, s, tok, "acme", "cached", f, 3*time.Minute); st.str("status") != "completed" {
			t.Fatalf("deployment %d: %s", i+1, st.body)
		}
	}
	families, _ := scrapeWhen(t, s, queueSettled)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"libra_build_cache_lookups_total", []string{"result", "miss"}, 1},
		{"libra_build_cache_lookups_total", []string{"result", "hit"}, 1},
		{"libra_deployment_step_duration_seconds", []string{"step", "build", "outcome", "ok"}, 3},
		{"libra_builds_reused_total", nil, 1},
	} {
		if got, ok := metricValue(families, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	sum := families["libra_deployment_step_duration_seconds"]
	for _, m := range sum.GetMetric() {
		if hasLabels(m, []string{"step", "build", "outcome", "ok"}) {
			t.Logf("build step: %d builds, %.2f s in all", m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum())
		}
	}
}
