package fakee2b_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/fakee2b"
)

// E2B's own JavaScript SDK against the fake: the fake accepts real client
// traffic, not only ours. It needs the npm package installed, so it runs
// only when LIBRA_E2B_JS_DIR names a directory where
// `npm install e2b@2.39.0` ran: the last release that creates sandboxes
// with POST /sandboxes, as the published spec has it (later ones use
// /v2/sandboxes, which that spec does not describe). The key has the
// format the SDK checks before it sends anything.
func TestReferenceClientAgainstFake(t *testing.T) {
	dir := os.Getenv("LIBRA_E2B_JS_DIR")
	if dir == "" {
		t.Skip("set LIBRA_E2B_JS_DIR to a directory with the e2b npm package installed")
	}
	fake := fakee2b.Start(t, "e2b_0123456789abcdef0123456789abcdef01234567")
	script, err := os.ReadFile("testdata/e2b-ref.mjs")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "libra-e2b-ref.mjs")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	cmd := exec.Command("node", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "E2B_API_KEY=e2b_0123456789abcdef0123456789abcdef01234567", "E2B_API_URL="+fake.APIURL, "E2B_SANDBOX_URL="+fake.SandboxURL)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("e2b SDK:\n%s", out)
	if err != nil {
		t.Fatalf("the e2b SDK failed against the fake: %v", err)
	}
	for _, want := range []string{`stdout: "hi from the reference client\n"`, `stderr: "exit-check\n"`, "exit 0", `read: "hi from the reference client\n"`, "killed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if st := fake.Stats(); st.Created != 1 || st.Killed != 1 || st.Extended != 1 {
		t.Errorf("stats %+v", st)
	}
}
