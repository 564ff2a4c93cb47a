package bwrap

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// TestBunInstallHardLinks: bun's package cache is on the project's mount,
// so the files bun installs are hard links into it, not copies (link(2)
// across the two bind mounts of the project and the org cache fails with
// EXDEV, and bun then copied every file).
func TestBunInstallHardLinks(t *testing.T) {
	needSandbox(t)
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	p, err := exec.LookPath("bun")
	if err != nil {
		t.Skip("bun is not installed (.ci/run installs it)")
	}
	if real, err := filepath.EvalSymlinks(p); err != nil || !strings.HasPrefix(real, "/usr/") || strings.HasPrefix(real, "/usr/local/") {
		t.Skipf("bun at %s is not under /usr, which the sandbox binds", p)
	}
	sb, work := newSandbox(t, shared, "org-bun")
	pkg := `{"name":"t","version":"1.0.0","private":true,"dependencies":{"is-number":"7.0.0"}}`
	if err := os.WriteFile(filepath.Join(work, "package.json"), []byte(pkg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, sb, libra.Command{Args: []string{"bun", "install"}, Network: true, Timeout: 120 * time.Second})
	mustOK(t, r, "bun install")
	fi, err := os.Stat(filepath.Join(work, "node_modules/is-number/index.js"))
	if err != nil {
		t.Fatalf("bun installed no is-number: %v\n%s", err, r.out())
	}
	if n := fi.Sys().(*syscall.Stat_t).Nlink; n < 2 {
		t.Errorf("node_modules/is-number/index.js has %d link(s): bun copied it instead of linking from its cache", n)
	}
	if _, err := os.Stat(filepath.Join(work, "node_modules/.cache/bun")); err != nil {
		t.Errorf("bun's cache is not in node_modules/.cache/bun: %v", err)
	}
}
