package main_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A running build cancelled in a remote sandbox: the deployment ends
// cancelled and the provider's sandbox is deleted, as after a failure or a
// deadline (issue 12: "delete the sandbox always ... cancellation").
func TestRemoteSandboxDeletedOnCancel(t *testing.T) {
	for _, rf := range remoteFakes {
		t.Run(rf.name, func(t *testing.T) {
			fake := rf.start(t)
			s := startServer(t, fake.env(fake.key)...)
			tok := s.setup("acme", "endless")
			r := deployFiles(s, tok, "acme", "endless", files(
				"package.json", `{"name":"endless","private":true,"scripts":{"build":"node -e \"console.log('forever');setInterval(()=>{},1000)\""}}`))
			id := r.str("deploymentId")
			s.waitFor(id, 90*time.Second, func(st response) bool {
				return stepStatus(st, "build") == "in_progress" && strings.Contains(string(st.body), "forever")
			})
			if fake.live() != 1 {
				t.Fatalf("while building: %d sandboxes live, want 1", fake.live())
			}
			start := time.Now()
			if c := cancel(s, tok, id); c.status != http.StatusAccepted {
				t.Fatalf("cancel: %d %s", c.status, c.body)
			}
			st := waitStatus(t, s, id, "cancelled", 30*time.Second)
			if stepStatus(st, "cleanup") != "completed" {
				t.Fatalf("cleanup did not run: %s", st.body)
			}
			deadline := time.Now().Add(10 * time.Second)
			for fake.live() != 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if fake.live() != 0 || fake.creates() != 1 {
				t.Fatalf("after cancel: %d sandboxes live, %d creates; want 0 and 1", fake.live(), fake.creates())
			}
			t.Logf("%s: cancel → cancelled with the sandbox deleted in %s", rf.name, time.Since(start).Round(time.Millisecond))
		})
	}
}
