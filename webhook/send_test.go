package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/netguard"
)

var secret = NewSecret()

// The dial guard refuses this machine's own receiver unless private
// addresses are allowed: the check is on the connection, not on the name.
func TestSendRefusesPrivateAddresses(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hit = true }))
	defer srv.Close()
	res := NewSender(false).Send(context.Background(), Message{URL: srv.URL, Secret: secret, ID: "msg_1", Body: []byte("{}")})
	var denied *netguard.DeniedError
	if !errors.As(res.Err, &denied) || hit {
		t.Fatalf("private receiver: err %v, reached %v", res.Err, hit)
	}
	if res := NewSender(true).Send(context.Background(), Message{URL: srv.URL, Secret: secret, ID: "msg_1", Body: []byte("{}")}); !res.OK() || !hit {
		t.Fatalf("with private addresses allowed: %+v", res)
	}
}

// A redirect is an answer, not a hop: its 3xx fails the attempt and the
// target is never asked.
func TestSendDoesNotFollowRedirects(t *testing.T) {
	target := false
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { target = true })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res := NewSender(true).Send(context.Background(), Message{URL: srv.URL + "/hook", Secret: secret, ID: "msg_1", Body: []byte("{}")})
	if res.OK() || res.Code != http.StatusFound || target {
		t.Fatalf("redirect: %+v, target reached %v", res, target)
	}
}

// A huge error body is read only up to the cap, and kept shorter still.
func TestSendCapsTheAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	}))
	defer srv.Close()
	res := NewSender(true).Send(context.Background(), Message{URL: srv.URL, Secret: secret, ID: "msg_1", Body: []byte("{}")})
	if res.Code != http.StatusBadGateway || res.Err == nil || len(res.Err.Error()) > maxErrorText+64 {
		t.Fatalf("result %+v", res)
	}
}

func TestCheckURL(t *testing.T) {
	strict := NewSender(false)
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://93.184.215.14/hook", true},
		{"http://93.184.215.14:8080/hook?x=1", true},
		{"ftp://93.184.215.14/", false},
		{"https:///nohost", false},
		{"https://u:p@93.184.215.14/", false},
		{"https://93.184.215.14/#frag", false},
		{"http://127.0.0.1/", false},
		{"http://[::ffff:10.0.0.1]/", false},
		{"http://169.254.169.254/", false},
		{"https://93.184.215.14/" + strings.Repeat("a", MaxURLLength), false},
	} {
		if err := strict.CheckURL(context.Background(), tc.url); (err == nil) != tc.ok {
			t.Errorf("%.60s: %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
	if err := NewSender(true).CheckURL(context.Background(), "http://127.0.0.1:9/"); err != nil {
		t.Errorf("private allowed: %v", err)
	}
}

// judge follows the schedule (scaled), honours Retry-After up to its cap,
// disables on 410 and fails after the last attempt.
func TestJudge(t *testing.T) {
	w := &Worker{RetryScale: 0.5}
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name     string
		attempts int
		res      Result
		status   string
		delay    time.Duration
		disable  bool
	}{
		{"2xx", 0, Result{Code: 204}, libra.DeliverySucceeded, 0, false},
		{"first failure", 0, Result{Code: 500, Err: errors.New("500")}, libra.DeliveryPending, 2500 * time.Millisecond, false},
		{"third failure", 2, Result{Code: 500, Err: errors.New("500")}, libra.DeliveryPending, 15 * time.Minute, false},
		{"no answer", 1, Result{Err: errors.New("timeout")}, libra.DeliveryPending, 150 * time.Second, false},
		{"retry-after longer", 0, Result{Code: 429, RetryAfter: time.Minute, Err: errors.New("429")}, libra.DeliveryPending, time.Minute, false},
		{"retry-after capped", 0, Result{Code: 503, RetryAfter: 48 * time.Hour, Err: errors.New("503")}, libra.DeliveryPending, MaxRetryAfter, false},
		{"gone", 3, Result{Code: 410, Err: errors.New("410")}, libra.DeliveryFailed, 0, true},
		{"last attempt", len(Schedule) - 1, Result{Code: 500, Err: errors.New("500")}, libra.DeliveryFailed, 0, false},
	} {
		a, delay := w.judge(&libra.WebhookDelivery{ID: "msg_1", Attempts: tc.attempts}, tc.res, now)
		if a.Status != tc.status || delay != tc.delay || (a.Disable != "") != tc.disable ||
			(a.Status == libra.DeliveryPending) != (a.NextAt != nil) {
			t.Errorf("%s: %+v after %s, want %s after %s (disable %v)", tc.name, a, delay, tc.status, tc.delay, tc.disable)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "120": 2 * time.Minute, "-3": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}
