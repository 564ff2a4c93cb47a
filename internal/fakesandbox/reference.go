package fakesandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Reference is a provider's own JavaScript SDK, driven by a script, run
// against a fake: it shows the fake accepts real client traffic, not only
// ours.
type Reference struct {
	SDK    string   // the SDK's name, for messages
	DirVar string   // names the directory where the SDK's npm package is installed
	Script string   // the .mjs file, relative to the test's directory
	Env    []string // what the script reads: the key and the fake's URLs
	Want   []string // what its output must contain
}

// Run skips unless DirVar names a directory, runs the script there with
// node, and fails unless it succeeds and prints every Want.
func (r Reference) Run(t *testing.T) {
	t.Helper()
	dir := os.Getenv(r.DirVar)
	if dir == "" {
		t.Skipf("set %s to a directory with the %s installed", r.DirVar, r.SDK)
	}
	script, err := os.ReadFile(r.Script)
	if err != nil {
		t.Fatal(err)
	}
	// The script runs from the SDK's directory, where node finds the package.
	path := filepath.Join(dir, "libra-"+filepath.Base(r.Script))
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	cmd := exec.Command("node", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), r.Env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", r.SDK, out)
	if err != nil {
		t.Fatalf("the %s failed against the fake: %v", r.SDK, err)
	}
	for _, want := range r.Want {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
