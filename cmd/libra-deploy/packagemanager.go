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
// it is set; otherwise the first of bun and pnpm that the local sandbox
// can run, else npm. On the profile app (cmd/libra-deploy/testdata/aiapp,
// about 50 dependencies with a peer conflict) a cold deployment took
// 18-19 s with bun, 16-20 s with pnpm and 28 s with npm, each building the
// same site (make bench-build BENCH_PM=npm,bun,pnpm); raw in a shell bun
// installs 4x faster than pnpm, so it goes first. npm comes with Node.js,
// so it is always there. Remote sandboxes run their provider's image,
// which may have neither: npm.
func defaultPackageManager(ctx context.Context, c *config, logger *slog.Logger) string {
	if c.DefaultPackageMgr != "" {
		return c.DefaultPackageMgr
	}
	pm := "npm"
	if c.SandboxProvider == "local" {
		for _, candidate := range []string{"bun", "pnpm"} {
			if runsInSandbox(ctx, candidate) {
				pm = candidate
				break
			}
		}
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
