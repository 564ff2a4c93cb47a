package main

import (
	"context"
	"log/slog"

	libra "github.com/libra-deploy/libra-deploy"
	"time"

	"github.com/libra-deploy/libra-deploy/sandbox/daytona"
	"github.com/libra-deploy/libra-deploy/sandbox/e2b"
)

// The remote providers read their own variables, under the names the
// vendors' clients use where those exist, so that the single-node
// configuration stays as it is.

// providerRequestTimeout bounds one request to a remote provider (not a
// build command's run): a provider that does not answer is a platform
// fault, retried like any other.
func providerRequestTimeout() time.Duration {
	return time.Duration(envInt("SANDBOX_PROVIDER_REQUEST_TIMEOUT_MS", 120000)) * time.Millisecond
}

func newDaytona() *daytona.Provider {
	return daytona.New(daytona.Config{
		APIURL:         env("DAYTONA_API_URL", daytona.DefaultAPIURL),
		APIKey:         env("DAYTONA_API_KEY", ""),
		Target:         env("DAYTONA_TARGET", ""),
		Snapshot:       env("DAYTONA_SNAPSHOT", ""),
		CPU:            envInt("DAYTONA_CPU", 0),
		MemoryGB:       envInt("DAYTONA_MEMORY_GB", 0),
		DiskGB:         envInt("DAYTONA_DISK_GB", 0),
		CreateTimeout:  time.Duration(envInt("DAYTONA_CREATE_TIMEOUT_MS", 120000)) * time.Millisecond,
		PollInterval:   time.Duration(envInt("DAYTONA_POLL_INTERVAL_MS", 500)) * time.Millisecond,
		RequestTimeout: providerRequestTimeout(),
	})
}

func newE2B() *e2b.Provider {
	return e2b.New(e2b.Config{
		APIURL:         env("E2B_API_URL", e2b.DefaultAPIURL),
		APIKey:         env("E2B_API_KEY", ""),
		SandboxURL:     env("E2B_SANDBOX_URL", ""),
		Domain:         env("E2B_DOMAIN", e2b.DefaultDomain),
		Template:       env("E2B_TEMPLATE", "base"),
		Timeout:        time.Duration(envInt("E2B_SANDBOX_TIMEOUT_MS", 300000)) * time.Millisecond,
		RequestTimeout: providerRequestTimeout(),
	})
}

// newRemoteSandboxes starts a remote provider. A configuration it cannot
// use is logged here and fails each build that needs a sandbox with the
// reason, as an unusable local sandbox does.
func newRemoteSandboxes(ctx context.Context, name string, logger *slog.Logger) libra.SandboxProvider {
	var p libra.SandboxProvider = newE2B()
	if name == "daytona" {
		p = newDaytona()
	}
	if err := p.Check(ctx); err != nil {
		logger.Warn("build sandbox unavailable: projects that need a build will fail; static sites still deploy", "provider", name, "err", err)
	}
	return p
}
