package main

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// defaultPackageManager is what a project with neither a lockfile nor a
// "packageManager" field installs with: BUILD_DEFAULT_PACKAGE_MANAGER when
// it is set; otherwise bun when the local sandbox can run it, else npm.
// bun installed the profile app (cmd/libra-deploy/testdata/aiapp, about 50
// dependencies with a peer conflict) 3-5x faster than npm and built the
// same site (make bench-build BENCH_PM=npm,bun); npm comes with Node.js,
// so it is always there. Remote sandboxes run their provider's image, which
// may not have bun: npm.
func defaultPackageManager(ctx context.Context, c *config, logger *slog.Logger) string {
	if c.DefaultPackageMgr != "" {
		return c.DefaultPackageMgr
	}
	pm := "npm"
	if c.SandboxProvider == "local" && runsInSandbox(ctx, "bun") {
		pm = "bun"
	}
	logger.Info("projects without a lockfile install with "+pm, "override", "BUILD_DEFAULT_PACKAGE_MANAGER")
	return pm
}

// runsInSandbox reports whether the local sandbox can run name: found on
// the PATH, really under /usr but not /usr/local (the sandbox binds /usr
// read-only and hides /usr/local), and answering --version.
func runsInSandbox(ctx context.Context, name string) bool {
	p, err := exec.LookPath(name)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil || !strings.HasPrefix(real, "/usr/") || strings.HasPrefix(real, "/usr/local/") {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, real, "--version").Output()
	return err == nil && len(strings.TrimSpace(string(out))) > 0
}
