package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
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
			UIDCount:          c.MaxConcurrent,
			CgroupParent:      c.SandboxCgroup,
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
	default:
		err := fmt.Errorf("unknown sandbox provider %q (SANDBOX_BUILDER_DEFAULT_PROVIDER); this build knows \"local\"", c.SandboxProvider)
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
