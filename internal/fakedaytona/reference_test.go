package fakedaytona_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/fakedaytona"
)

// Daytona's own TypeScript SDK against the fake: the fake accepts real
// client traffic, not only ours. It needs the npm package installed (about
// 100 MB), so it runs only when LIBRA_DAYTONA_JS_DIR names a directory where
// `npm install @daytonaio/sdk` ran.
func TestReferenceClientAgainstFake(t *testing.T) {
	dir := os.Getenv("LIBRA_DAYTONA_JS_DIR")
	if dir == "" {
		t.Skip("set LIBRA_DAYTONA_JS_DIR to a directory with @daytonaio/sdk installed")
	}
	fake := fakedaytona.Start(t, "dtn_reference_key")
	script, err := os.ReadFile("testdata/daytona-ref.mjs")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "libra-daytona-ref.mjs")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	cmd := exec.Command("node", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DAYTONA_API_KEY=dtn_reference_key", "DAYTONA_API_URL="+fake.APIURL)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("Daytona SDK:\n%s", out)
	if err != nil {
		t.Fatalf("the Daytona SDK failed against the fake: %v", err)
	}
	for _, want := range []string{"exit 0", "hi from the reference client", "exit-check", `read: "hi from the reference client\n"`, "deleted"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if created, deleted := fake.Counts(); created != 1 || deleted != 1 {
		t.Errorf("created %d deleted %d", created, deleted)
	}
}
