package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/sandbox/bwrap"
)

// newSandboxes starts the configured build sandbox provider. A provider that
// cannot start is not fatal: the service still deploys static sites, and
// projects that need a build fail at the sandbox step with this reason
// (never a silent fallback to building outside a sandbox).
func newSandboxes(ctx context.Context, c *config, logger *slog.Logger) (libra.SandboxProvider, func()) {
	switch c.SandboxProvider {
	case "local":
		ports, _ := c.proxyPorts() // validated at start
		p, err := bwrap.New(ctx, bwrap.Config{
			StateDir:          c.sandboxDir(),
			CacheDir:          c.cacheDir() + "/pm",
			UIDBase:           c.SandboxUIDBase,
			NodeID:            c.NodeID,
			UIDCount:          c.MaxConcurrent,
			CgroupParent:      cmp.Or(c.SandboxCgroup, defaultSandboxCgroup(c.DataDir)),
			MemoryLimit:       int64(c.SandboxMemoryMB) << 20,
			PidsLimit:         c.SandboxPids,
			DiskLimit:         int64(c.SandboxDiskMB) << 20,
			CPUTimeLimit:      time.Duration(c.SandboxCPUSeconds) * time.Second,
			ProxyAllowedHosts: c.RegistryAllowlist,
			ProxyPorts:        ports,
			ProxyMaxConns:     c.SandboxProxyConns,
			Logger:            logger.With("component", "sandbox"),
		})
		if err != nil {
			logger.Warn("build sandbox unavailable: projects that need a build will fail; static sites still deploy", "provider", "local", "err", err)
			return unavailable{"local", err}, func() {}
		}
		if err := p.Check(ctx); err != nil {
			logger.Warn("build sandbox check failed", "provider", "local", "err", err)
		}
		return p, func() { p.Close() }
	case "daytona", "e2b":
		return newRemoteSandboxes(ctx, c.SandboxProvider, logger), func() {}
	default:
		err := fmt.Errorf("unknown sandbox provider %q (SANDBOX_BUILDER_DEFAULT_PROVIDER); this build knows \"local\", \"daytona\" and \"e2b\"", c.SandboxProvider)
		logger.Warn("build sandbox unavailable", "err", err)
		return unavailable{c.SandboxProvider, err}, func() {}
	}
}

// unavailable is a provider that could not start: it reports why.
type unavailable struct {
	name string
	err  error
}

func (u unavailable) Name() string                { return u.name }
func (u unavailable) Check(context.Context) error { return u.err }
func (u unavailable) Create(context.Context, libra.SandboxOptions) (libra.Sandbox, error) {
	return nil, libra.Permanent(u.err)
}

// nodeVersion is the host's Node.js version: it runs the builds, and its
// major version is part of the build cache key.
func nodeVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "node", "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// sandboxRootParent is where default sandbox roots live: a root-owned place
// that every uid can traverse, whatever the data directory's parents are
// (a checkout under /root is 0700).
const sandboxRootParent = "/var/lib/libra-deploy"

// defaultSandboxRoot is one directory per data directory, so that two
// serve processes on one host never share state, caches or working
// directories.
func defaultSandboxRoot(dataDir string) string {
	return filepath.Join(sandboxRootParent, "sandbox-"+dataDirTag(dataDir))
}

// defaultSandboxCgroup is one cgroup parent per data directory: a serve
// removes whatever it finds in its parent at start as its own leftovers,
// which would kill another serve's builds if they shared it. The same data
// directory keeps its name, so a restart still finds what a crash left.
func defaultSandboxCgroup(dataDir string) string {
	return "libra-sandbox-" + dataDirTag(dataDir)
}

// dataDirTag is short and stable for an absolute data directory path.
func dataDirTag(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return hex.EncodeToString(sum[:6])
}

// resolveSandboxRoot sets c.SandboxRoot to a directory the build uids can
// traverse but not list. A configured SANDBOX_ROOT must work. The default
// needs root; without it (no builds possible anyway, but static sites
// deploy) the root falls back to a directory inside the data directory.
func resolveSandboxRoot(c *config, logger *slog.Logger) error {
	if c.SandboxRoot != "" {
		abs, err := filepath.Abs(c.SandboxRoot)
		if err != nil {
			return fmt.Errorf("SANDBOX_ROOT: %w", err)
		}
		c.SandboxRoot = abs
		return makeTraversableDir(abs)
	}
	c.SandboxRoot = defaultSandboxRoot(c.DataDir)
	err := makeTraversableDir(c.SandboxRoot)
	if err == nil {
		return nil
	}
	fallback := filepath.Join(c.DataDir, "build-root")
	logger.Warn("cannot use the default sandbox root; using one inside the data directory, which builds reach only if its parents are searchable (set SANDBOX_ROOT)",
		"default", c.SandboxRoot, "err", err, "fallback", fallback)
	c.SandboxRoot = fallback
	return makeTraversableDir(fallback)
}

// makeTraversableDir creates dir with mode 0711 and checks that it is a
// real directory of this process's user: a symlink or someone else's
// directory there could redirect what builds are given.
func makeTraversableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("sandbox root: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("sandbox root: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("sandbox root %s: not a directory owned by uid %d", dir, os.Geteuid())
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("sandbox root: %w", err)
	}
	return nil
}
