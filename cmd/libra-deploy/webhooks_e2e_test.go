package main_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// Webhooks end to end: a receiver on this machine (hence
// WEBHOOK_ALLOW_PRIVATE=1, which only tests may set) that checks every
// signature with its own verifier, written from the Standard Webhooks spec
// apart from the service's signer.

// received is one message a receiver accepted as correctly signed.
type received struct {
	id, timestamp string
	body          map[string]any
}

// receiver answers per path: /ok 200, /flaky 500 twice then 200, /gone 410.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	secrets  map[string]string // path -> whsec_ secret
	got      map[string][]received
	requests map[string]int
	bad      []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, secrets: map[string]string{}, got: map[string][]received{}, requests: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	path := req.URL.Path
	r.requests[path]++
	if err := verifyStandardWebhook(r.secrets[path], req.Header, body, time.Now()); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("%s: %v", path, err))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case path == "/gone":
		w.WriteHeader(http.StatusGone)
		return
	case path == "/flaky" && r.requests[path] <= 2:
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var m received
	m.id, m.timestamp = req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	if err := json.Unmarshal(body, &m.body); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("%s: body: %v", path, err))
	}
	r.got[path] = append(r.got[path], m)
	w.WriteHeader(http.StatusNoContent)
}

// verifyStandardWebhook checks a message the way a receiver following the
// spec does: the timestamp within 5 minutes, and one of the space-separated
// "v1,<base64>" signatures equal to HMAC-SHA256 of "{id}.{timestamp}.{body}"
// under the secret's decoded key, compared in constant time.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers (id %q, timestamp %q, signature %q)", id, ts, sigs)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q out of tolerance", ts)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return fmt.Errorf("no usable secret for this path")
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, b64, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no signature matches")
}

// messages returns what path received, and any verification failures.
func (r *receiver) messages(path string) ([]received, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got[path]...), append([]string(nil), r.bad...)
}

// waitMessages waits until path has received n messages.
func (r *receiver) waitMessages(path string, n int, timeout time.Duration) []received {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, bad := r.messages(path)
		if len(bad) > 0 {
			r.t.Fatalf("signature verification failed: %v", bad)
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %d messages after %s, want %d: %+v", path, len(got), timeout, n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *receiver) setSecret(path, secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets[path] = secret
}

// addHook creates an endpoint for receiver path and hands its secret to
// the receiver.
func addHook(t *testing.T, s *server, r *receiver, tok, project, path string, events ...string) string {
	t.Helper()
	body := map[string]any{"url": r.srv.URL + path}
	if len(events) > 0 {
		body["events"] = events
	}
	resp := s.do("POST", "/projects/"+project+"/webhooks", body, bearer(tok)...)
	secret := resp.str("secret")
	if resp.status != 201 || !strings.HasPrefix(secret, "whsec_") || !strings.HasPrefix(resp.str("id"), "wh_") {
		t.Fatalf("create webhook: %d %s", resp.status, resp.body)
	}
	r.setSecret(path, secret)
	return resp.str("id")
}

func byType(ms []received) map[string][]received {
	out := map[string][]received{}
	for _, m := range ms {
		typ, _ := m.body["type"].(string)
		out[typ] = append(out[typ], m)
	}
	return out
}

func dataOf(m received) map[string]any {
	d, _ := m.body["data"].(map[string]any)
	return d
}

// deliveries lists an endpoint's deliveries.
func deliveries(t *testing.T, s *server, tok, project, hook string) []map[string]any {
	t.Helper()
	r := s.do("GET", "/projects/"+project+"/webhooks/"+hook+"/deliveries", nil, bearer(tok)...)
	if r.status != 200 {
		t.Fatalf("deliveries: %d %s", r.status, r.body)
	}
	var out struct {
		Deliveries []map[string]any `json:"deliveries"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Deliveries
}

// waitDelivery waits until the endpoint's only delivery of event is no
// longer pending, and returns it.
func waitDelivery(t *testing.T, s *server, tok, project, hook, event string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, d := range deliveries(t, s, tok, project, hook) {
			if d["event"] == event && d["status"] != "pending" {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished %s delivery on %s: %+v", event, hook, deliveries(t, s, tok, project, hook))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// webhookEnv: retries 500 times faster (5 s -> 10 ms, 5 min -> 600 ms), a
// project whose builds fail, and the admin token that opens /metrics.
var webhookEnv = []string{"WEBHOOK_ALLOW_PRIVATE=1", "WEBHOOK_RETRY_SCALE=0.002",
	"LIBRA_TEST_HOOKS=build@broken:permanent", "ADMIN_TOKEN=" + testAdminToken}

// TestWebhooksDelivered: created, promoted and succeeded for a good
// deployment, failed for a broken one, promoted again for a rollback, each
// signed (checked by the receiver), with the deployment as /deploy-status
// shows it, and the webhook-id the delivery's id.
func TestWebhooksDelivered(t *testing.T) {
	s := startServer(t, webhookEnv...)
	r := newReceiver(t)
	tok := s.setup("acme", "site")
	s.admin("project", "create", "--org", "acme", "--id", "broken")
	hook := addHook(t, s, r, tok, "site", "/ok")
	addHook(t, s, r, tok, "broken", "/failures", "deployment.failed")

	first := s.deploy(tok, staticSite("acme", "site", 2)).str("deploymentId")
	status := s.waitFinal(first, 60*time.Second)
	got := byType(r.waitMessages("/ok", 3, 30*time.Second))
	for _, typ := range []string{"deployment.created", "deployment.promoted", "deployment.succeeded"} {
		if len(got[typ]) != 1 || dataOf(got[typ][0])["deploymentId"] != first {
			t.Fatalf("%s: %+v", typ, got[typ])
		}
	}
	done := dataOf(got["deployment.succeeded"][0])
	for _, key := range []string{"deploymentId", "status", "progress", "url", "steps"} {
		a, _ := json.Marshal(done[key])
		b, _ := json.Marshal(status.json[key])
		if string(a) != string(b) {
			t.Errorf("payload %s = %s, /deploy-status says %s", key, a, b)
		}
	}
	if done["projectId"] != "site" || done["orgId"] != "acme" || done["status"] != "completed" {
		t.Errorf("payload data %v", done)
	}
	ds := deliveries(t, s, tok, "site", hook)
	if len(ds) != 3 {
		t.Fatalf("deliveries: %+v", ds)
	}
	ids := map[string]bool{}
	for _, m := range got["deployment.created"] {
		ids[m.id] = true
	}
	for _, d := range ds {
		if d["event"] == "deployment.created" && !ids[d["id"].(string)] {
			t.Errorf("delivery id %v is not the webhook-id received %v", d["id"], ids)
		}
	}
	d := waitDelivery(t, s, tok, "site", hook, "deployment.succeeded")
	if d["attempts"] != 1.0 || d["responseCode"] != 204.0 || len(d["durationsMs"].([]any)) != 1 {
		t.Errorf("delivery %+v", d)
	}

	broken := s.deploy(tok, staticSite("acme", "broken", 1)).str("deploymentId")
	if st := s.waitFinal(broken, 60*time.Second).str("status"); st != "failed" {
		t.Fatalf("broken deployment %s", st)
	}
	failed := r.waitMessages("/failures", 1, 30*time.Second)
	if failed[0].body["type"] != "deployment.failed" || dataOf(failed[0])["deploymentId"] != broken ||
		dataOf(failed[0])["error"] == "" {
		t.Fatalf("failure message %+v", failed[0].body)
	}

	second := s.deploy(tok, staticSite("acme", "site", 1)).str("deploymentId")
	s.waitFinal(second, 60*time.Second)
	r.waitMessages("/ok", 6, 30*time.Second)
	if rb := s.do("POST", "/projects/site/rollback", map[string]any{"deploymentId": first}, bearer(tok)...); rb.status != 200 {
		t.Fatalf("rollback: %d %s", rb.status, rb.body)
	}
	all := r.waitMessages("/ok", 7, 30*time.Second)
	last := all[len(all)-1]
	if last.body["type"] != "deployment.promoted" || dataOf(last)["deploymentId"] != first {
		t.Fatalf("after rollback: %+v", last.body)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(r.waitMessages("/failures", 1, time.Second)); n != 1 {
		t.Errorf("the failures-only endpoint got %d messages, want 1", n)
	}
}

// TestWebhookRetriesGoneAndRedeliver: an endpoint that fails twice is
// retried on the (shortened) schedule with the same webhook-id until it
// succeeds; one that answers 410 is disabled and gets nothing more; a
// finished delivery is sent again on request; /metrics counts all of it.
func TestWebhookRetriesGoneAndRedeliver(t *testing.T) {
	s := startServer(t, webhookEnv...)
	r := newReceiver(t)
	tok := s.setup("acme", "site")
	flaky := addHook(t, s, r, tok, "site", "/flaky", "deployment.created")
	gone := addHook(t, s, r, tok, "site", "/gone", "deployment.created")

	id := s.deploy(tok, staticSite("acme", "site", 1)).str("deploymentId")
	msgs := r.waitMessages("/flaky", 1, 30*time.Second)
	d := waitDelivery(t, s, tok, "site", flaky, "deployment.created")
	if d["status"] != "succeeded" || d["attempts"] != 3.0 || d["responseCode"] != 204.0 || len(d["durationsMs"].([]any)) != 3 ||
		d["id"] != msgs[0].id || dataOf(msgs[0])["deploymentId"] != id {
		t.Fatalf("flaky delivery %+v, message %+v", d, msgs[0])
	}
	r.mu.Lock()
	tries := r.requests["/flaky"]
	r.mu.Unlock()
	if tries != 3 {
		t.Fatalf("flaky endpoint got %d requests, want 3", tries)
	}

	g := waitDelivery(t, s, tok, "site", gone, "deployment.created")
	if g["status"] != "failed" || g["attempts"] != 1.0 || g["responseCode"] != 410.0 {
		t.Fatalf("gone delivery %+v", g)
	}
	list := s.do("GET", "/projects/site/webhooks", nil, bearer(tok)...)
	var hooks struct {
		Webhooks []map[string]any `json:"webhooks"`
	}
	if err := json.Unmarshal(list.body, &hooks); err != nil || len(hooks.Webhooks) != 2 {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	for _, h := range hooks.Webhooks {
		if want := h["id"] == gone; h["disabled"] != want {
			t.Errorf("webhook %v disabled=%v, want %v", h["id"], h["disabled"], want)
		}
	}
	redeliverGone := s.do("POST", "/projects/site/webhooks/"+gone+"/deliveries/"+g["id"].(string)+"/redeliver", nil, bearer(tok)...)
	if redeliverGone.status != 409 || redeliverGone.str("error") != "CONFLICT" {
		t.Fatalf("redeliver to a disabled endpoint: %d %s", redeliverGone.status, redeliverGone.body)
	}

	s.waitFinal(id, 60*time.Second)
	next := s.deploy(tok, staticSite("acme", "site", 1)).str("deploymentId")
	r.waitMessages("/flaky", 2, 30*time.Second)
	if n := len(deliveries(t, s, tok, "site", gone)); n != 1 {
		t.Fatalf("a disabled endpoint got %d deliveries, want 1", n)
	}
	s.waitFinal(next, 60*time.Second)

	again := s.do("POST", "/projects/site/webhooks/"+flaky+"/deliveries/"+msgs[0].id+"/redeliver", nil, bearer(tok)...)
	if again.status != 202 || again.str("id") != msgs[0].id {
		t.Fatalf("redeliver: %d %s", again.status, again.body)
	}
	all := r.waitMessages("/flaky", 3, 30*time.Second)
	if all[2].id != msgs[0].id || all[2].timestamp == "" {
		t.Fatalf("redelivered message %+v, want webhook-id %s", all[2], msgs[0].id)
	}
	unknown := s.do("POST", "/projects/site/webhooks/"+flaky+"/deliveries/msg_nope/redeliver", nil, bearer(tok)...)
	if unknown.status != 404 {
		t.Fatalf("redeliver unknown: %d %s", unknown.status, unknown.body)
	}

	families, _ := scrapeWhen(t, s, func(f map[string]*dto.MetricFamily) bool {
		ok, _ := metricValue(f, "libra_webhook_deliveries_total", "outcome", "succeeded")
		return ok >= 3
	})
	for outcome, want := range map[string]float64{"succeeded": 3, "retried": 2, "disabled": 1, "failed": 0} {
		if got, _ := metricValue(families, "libra_webhook_deliveries_total", "outcome", outcome); got != want {
			t.Errorf("libra_webhook_deliveries_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

// TestWebhookAPIRules: the secret is in the creating answer only; bad input
// is a 400 that creates nothing; another org's token sees 404 everywhere;
// the per-project cap holds; deletion removes the endpoint.
func TestWebhookAPIRules(t *testing.T) {
	s := startServer(t, webhookEnv...)
	r := newReceiver(t)
	tok := s.setup("acme", "site")
	other := s.setup("evil", "theirs")
	hook := addHook(t, s, r, tok, "site", "/ok")
	r.mu.Lock()
	secret := r.secrets["/ok"]
	r.mu.Unlock()

	base := "/projects/site/webhooks"
	for _, path := range []string{base, base + "/" + hook + "/deliveries"} {
		got := s.do("GET", path, nil, bearer(tok)...)
		if got.status != 200 || strings.Contains(string(got.body), secret) || strings.Contains(string(got.body), "whsec_") {
			t.Fatalf("GET %s: %d %s", path, got.status, got.body)
		}
	}

	long := r.srv.URL + "/" + strings.Repeat("a", 2100)
	for name, body := range map[string]any{
		"unknown event": map[string]any{"url": r.srv.URL + "/x", "events": []string{"deployment.exploded"}},
		"repeated event": map[string]any{"url": r.srv.URL + "/x",
			"events": []string{"deployment.created", "deployment.created"}},
		"ftp url":    map[string]any{"url": "ftp://example.com/hook"},
		"no host":    map[string]any{"url": "https:///hook"},
		"long url":   map[string]any{"url": long},
		"no url":     map[string]any{"events": []string{"deployment.created"}},
		"user info":  map[string]any{"url": "https://user:pw@example.com/hook"},
		"not a list": map[string]any{"url": r.srv.URL + "/x", "events": "deployment.created"},
	} {
		got := s.do("POST", base, body, bearer(tok)...)
		if got.status != 400 || got.json["success"] != false || got.str("error") != "VALIDATION_ERROR" || got.str("message") == "" {
			t.Errorf("%s: %d %s", name, got.status, got.body)
		}
	}

	for _, req := range []struct{ method, path string }{
		{"GET", base}, {"POST", base}, {"DELETE", base + "/" + hook}, {"GET", base + "/" + hook + "/deliveries"},
		{"POST", base + "/" + hook + "/deliveries/msg_x/redeliver"}, {"GET", "/projects/nope/webhooks"},
	} {
		var body any
		if req.method == "POST" && req.path == base {
			body = map[string]any{"url": r.srv.URL + "/steal"}
		}
		if got := s.do(req.method, req.path, body, bearer(other)...); got.status != 404 || got.json["success"] != false {
			t.Errorf("%s %s with another org's token: %d %s", req.method, req.path, got.status, got.body)
		}
	}
	if got := s.do("GET", base, nil); got.status != 401 {
		t.Errorf("without a token: %d", got.status)
	}

	for i := 1; i < 10; i++ {
		addHook(t, s, r, tok, "site", fmt.Sprintf("/n%d", i))
	}
	if got := s.do("POST", base, map[string]any{"url": r.srv.URL + "/eleventh"}, bearer(tok)...); got.status != 409 {
		t.Fatalf("eleventh endpoint: %d %s", got.status, got.body)
	}
	if got := s.do("DELETE", base+"/"+hook, nil, bearer(tok)...); got.status != 200 {
		t.Fatalf("delete: %d %s", got.status, got.body)
	}
	if got := s.do("DELETE", base+"/"+hook, nil, bearer(tok)...); got.status != 404 {
		t.Fatalf("delete twice: %d %s", got.status, got.body)
	}
	var hooks struct {
		Webhooks []map[string]any `json:"webhooks"`
	}
	_ = json.Unmarshal(s.do("GET", base, nil, bearer(tok)...).body, &hooks)
	if len(hooks.Webhooks) != 9 {
		t.Fatalf("%d endpoints after deleting one of 10", len(hooks.Webhooks))
	}
}

// TestWebhookPrivateURLRefused: without WEBHOOK_ALLOW_PRIVATE, a URL whose
// host is, or resolves to, this machine, a private network or the cloud
// metadata address is refused when the endpoint is made.
func TestWebhookPrivateURLRefused(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "site")
	for _, u := range []string{"http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/latest",
		"https://10.0.0.8/hook", "http://[::1]/hook", "http://100.64.0.1/", "http://[fd00:ec2::254]/", "http://0.0.0.0/"} {
		got := s.do("POST", "/projects/site/webhooks", map[string]any{"url": u}, bearer(tok)...)
		if got.status != 400 || got.str("error") != "VALIDATION_ERROR" {
			t.Errorf("%s: %d %s", u, got.status, got.body)
		}
	}
	var hooks struct {
		Webhooks []map[string]any `json:"webhooks"`
	}
	_ = json.Unmarshal(s.do("GET", "/projects/site/webhooks", nil, bearer(tok)...).body, &hooks)
	if len(hooks.Webhooks) != 0 {
		t.Fatalf("refused URLs left endpoints: %+v", hooks.Webhooks)
	}
}

// TestWebhooksAcrossNodes: cluster mode. An endpoint made through node A
// is used by node B, whose workers deliver after A is gone: the endpoint,
// the outbox and the jobs are all in PostgreSQL.
func TestWebhooksAcrossNodes(t *testing.T) {
	dbURL := pgtest.Database(t, pgTemplate)
	gw := s3test.Start(t)
	env := append(gw.Env("cluster"), "POSTGRES_URL="+dbURL, "WEBHOOK_ALLOW_PRIVATE=1", "WEBHOOK_RETRY_SCALE=0.002")
	a := startServer(t, append(env, "NODE_ID=node-a")...)
	b := startServer(t, append(env, "NODE_ID=node-b")...)
	r := newReceiver(t)
	tok := pgAdmin(t, a, dbURL, "token", "create", "--org", "acme", "--user", "user-acme")
	pgAdmin(t, a, dbURL, "project", "create", "--org", "acme", "--id", "site")
	hook := addHook(t, a, r, tok, "site", "/flaky")
	a.kill()

	id := b.deploy(tok, staticSite("acme", "site", 1)).str("deploymentId")
	b.waitFinal(id, 60*time.Second)
	got := byType(r.waitMessages("/flaky", 3, 30*time.Second))
	for _, typ := range []string{"deployment.created", "deployment.promoted", "deployment.succeeded"} {
		if len(got[typ]) != 1 || dataOf(got[typ][0])["deploymentId"] != id {
			t.Fatalf("%s: %+v", typ, got[typ])
		}
	}
	attempts := 0.0
	for _, d := range deliveries(t, b, tok, "site", hook) {
		attempts += d["attempts"].(float64)
	}
	if attempts != 5 { // the first two requests failed, whichever events they carried
		t.Fatalf("attempts over all deliveries: %v, want 5", attempts)
	}
}
