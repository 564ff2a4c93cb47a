package main_test

import (
	"strings"
	"testing"
)

// An outage of Cloudflare that outlasts every attempt: each attempt is
// retried (a platform fault), then the deployment fails, its job goes to
// the dead-letter queue and its quota comes back — the same fate as a
// remote sandbox provider's outage.
func TestCloudflareOutageDeadLettered(t *testing.T) {
	fake, env := cloudflareFake(t, cfToken)
	fake.Fail("/assets-upload-session", 503, 1000)
	s := startServer(t, append(env, "RETRY_BACKOFF_MS=100", "MAX_RETRIES=2")...)
	tok := s.setup("acme", "site")
	id := s.deployWait(tok, site("acme", "site", map[string]string{"index.html": "<h1>hi</h1>"}), "failed")
	waitDeadLettered(t, s, id)
	st := s.waitFinal(id, 0)
	logs := strings.Join(logMessages(st), "\n")
	for _, want := range []string{"attempt 1 of 3 failed", "attempt 2 of 3 failed", "HTTP 503"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
	if fake.Script("libra-site") != nil {
		t.Fatal("a script was uploaded although every upload session failed")
	}
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "0 used") {
		t.Fatalf("quota not given back after a platform outage: %s", out)
	}
	noSecret(t, s, st.body)
}
