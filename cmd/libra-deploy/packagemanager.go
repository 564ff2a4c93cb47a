package main

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"time"
)

// sandboxPath is the PATH of commands in the local sandbox
// (sandbox/bwrap), which runs the host's own programs.
const sandboxPath = "/usr/local/bin:/usr/bin:/bin"

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

// runsInSandbox reports whether name, looked up on the sandbox's PATH,
// answers --version.
func runsInSandbox(ctx context.Context, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, dir := range strings.Split(sandboxPath, ":") {
		out, err := exec.CommandContext(ctx, dir+"/"+name, "--version").Output()
		if err == nil && len(strings.TrimSpace(string(out))) > 0 {
			return true
		}
	}
	return false
}
