package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is every setting of the service. Each field has an environment
// variable (the seed's name where it had one) and most have a flag; flags win.
type config struct {
	Addr        string
	DataDir     string
	Environment string
	LogLevel    string

	QueueName     string
	DLQName       string
	Timeout       time.Duration
	MaxConcurrent int
	RetryBase     time.Duration
	ShutdownGrace time.Duration

	SandboxProvider string
	SitesDomain     string
	SitesScheme     string
	CORSOrigins     []string
	RateLimit       float64
	RateBurst       int
	// FastPath serves plain GETs of sites on a loop of its own rather than
	// through net/http (internal/http1).
	FastPath bool
	// ReuseBuilds publishes an earlier build's output for a deployment with
	// the same inputs (BUILD_REUSE, on by default; workflow/buildreuse.go).
	ReuseBuilds bool
	// MaxHeaderBytes bounds a request's head on every listener (net/http
	// and the fast loop); a larger one is answered 431.
	MaxHeaderBytes int

	// APIHosts are the names the API is reached by: never a custom
	// domain, always the API (API_HOSTS, comma-separated).
	APIHosts []string
	// DNSResolver is the host:port of the DNS server custom domains are
	// verified with (DNS_RESOLVER); "" means the first of /etc/resolv.conf.
	DNSResolver string
	// DomainCheckInterval is how often pending custom domains are checked
	// in the background (DOMAIN_CHECK_INTERVAL); 0 turns it off.
	DomainCheckInterval time.Duration

	// WriteTimeout ends a connection whose client stops reading: the most
	// time a response may go without the client acknowledging any of it.
	WriteTimeout    time.Duration
	writeTimeoutErr error

	// Builds: the sandbox's limits and the build's timeouts.
	SandboxMemoryMB   int
	SandboxPids       int
	SandboxDiskMB     int
	SandboxCPUSeconds int
	SandboxUIDBase    int
	SandboxCgroup     string
	// SandboxRoot holds everything a build uid must reach: the sandbox's
	// state, the org caches and the deployments' working directories. Empty
	// means defaultSandboxRoot (see sandbox.go); runServe resolves it.
	SandboxRoot       string
	RegistryAllowlist []string
	// SandboxProxyPorts: the ports an allow-listed registry may be reached
	// on through the install proxy, comma-separated.
	SandboxProxyPorts string
	// SandboxProxyConns caps the connections one build holds to the
	// install proxy.
	SandboxProxyConns int
	InstallTimeout    time.Duration
	BuildTimeout      time.Duration
	DefaultPackageMgr string
	OutputLimitMB     int
	BuildLogLimitMB   int

	// NodeID names this instance (NODE_ID; default: host name plus a
	// random suffix per start, see node.go).
	NodeID string
	// Leases: LEASE_DURATION, MAX_LEASE_RECLAIMS (leases.go).
	Leases leaseConfig

	// MetricsAddr (METRICS_ADDR), when set, serves /metrics without
	// authentication on a listener of its own instead of the API's.
	MetricsAddr string

	// TestHooks injects delays and faults into steps; see hooks.go.
	TestHooks string

	// Webhooks: WEBHOOK_RETRY_SCALE, WEBHOOK_ALLOW_PRIVATE (webhooks.go).
	Webhooks webhookConfig
}

// secretVars are the environment variables whose values must never reach a
// log line; their values are redacted from build output too.
var secretVars = []string{"E2B_API_KEY", "DAYTONA_API_KEY", "POSTGRES_URL", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_ZONE_ID", "ADMIN_TOKEN", secretKeyVar}

func (c *config) secrets() []string {
	var out []string
	for _, name := range secretVars {
		if v := os.Getenv(name); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(env(name, "")); err == nil {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(env(name, ""), 64); err == nil {
		return v
	}
	return def
}

// loadConfig reads the environment; commonFlags and serveFlags then bind
// flags on top of it.
func loadConfig() *config {
	c := &config{
		Addr:            ":" + env("PORT", "3008"),
		DataDir:         env("DATA_DIR", "./data"),
		Environment:     env("ENVIRONMENT", "development"),
		LogLevel:        env("LOG_LEVEL", "info"),
		QueueName:       env("DEPLOYMENT_QUEUE_NAME", "deployment-queue"),
		DLQName:         env("DEPLOYMENT_DLQ_NAME", "deployment-dlq"),
		Timeout:         time.Duration(envInt("MAX_DEPLOYMENT_TIMEOUT", 600000)) * time.Millisecond,
		MaxConcurrent:   envInt("MAX_CONCURRENT_DEPLOYMENTS", 5),
		RetryBase:       time.Duration(envInt("RETRY_BACKOFF_MS", 2000)) * time.Millisecond,
		ShutdownGrace:   time.Duration(envInt("SHUTDOWN_GRACE_MS", 10000)) * time.Millisecond,
		SandboxProvider: env("SANDBOX_BUILDER_DEFAULT_PROVIDER", "local"),
		SitesDomain:     env("SITES_DOMAIN", "localhost"),
		SitesScheme:     env("SITES_SCHEME", "http"),
		RateLimit:       envFloat("RATE_LIMIT_RPS", 10),
		RateBurst:       envInt("RATE_LIMIT_BURST", 50),
		MetricsAddr:     env("METRICS_ADDR", ""),
		FastPath:        !slices.Contains([]string{"off", "false", "0"}, strings.ToLower(env("SITE_FAST_PATH", "on"))),
		ReuseBuilds:     !slices.Contains([]string{"off", "false", "0"}, strings.ToLower(env("BUILD_REUSE", "on"))),
		TestHooks:       env("LIBRA_TEST_HOOKS", ""),
		MaxHeaderBytes:  envInt("MAX_HEADER_BYTES", defaultMaxHeaderBytes),

		DNSResolver: env("DNS_RESOLVER", ""),

		NodeID: env("NODE_ID", defaultNodeID()),
		Leases: loadLeaseConfig(),

		Webhooks: loadWebhookConfig(),

		SandboxMemoryMB:   envInt("SANDBOX_MEMORY_MB", 4096),
		SandboxPids:       envInt("SANDBOX_PIDS_LIMIT", 512),
		SandboxDiskMB:     envInt("SANDBOX_DISK_MB", 2048),
		SandboxCPUSeconds: envInt("SANDBOX_CPU_SECONDS", 900),
		SandboxUIDBase:    envInt("SANDBOX_UID_BASE", 0),
		SandboxCgroup:     env("SANDBOX_CGROUP", ""), // empty: defaultSandboxCgroup
		SandboxRoot:       env("SANDBOX_ROOT", ""),
		SandboxProxyPorts: env("SANDBOX_PROXY_PORTS", "443"),
		SandboxProxyConns: envInt("SANDBOX_PROXY_MAX_CONNS", 64),
		InstallTimeout:    time.Duration(envInt("BUILD_INSTALL_TIMEOUT_MS", 300000)) * time.Millisecond,
		BuildTimeout:      time.Duration(envInt("BUILD_TIMEOUT_MS", 300000)) * time.Millisecond,
		DefaultPackageMgr: env("BUILD_DEFAULT_PACKAGE_MANAGER", ""), // "": defaultPackageManager decides
		OutputLimitMB:     envInt("OUTPUT_LIMIT_MB", 1024),
		BuildLogLimitMB:   envInt("BUILD_LOG_LIMIT_MB", 10),
	}
	// envDuration (releases.go): a Go duration, or a number of ms.
	c.WriteTimeout, c.writeTimeoutErr = envDuration("WRITE_TIMEOUT", 30*time.Second)
	for _, h := range strings.Split(env("BUILD_REGISTRY_ALLOWLIST", ""), ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.RegistryAllowlist = append(c.RegistryAllowlist, h)
		}
	}
	if d, err := time.ParseDuration(env("DOMAIN_CHECK_INTERVAL", "1m")); err == nil && d >= 0 {
		c.DomainCheckInterval = d
	} else {
		c.DomainCheckInterval = time.Minute
	}
	for _, h := range strings.Split(env("API_HOSTS", ""), ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.APIHosts = append(c.APIHosts, h)
		}
	}
	for _, o := range strings.Split(env("CORS_ORIGINS", "http://localhost:*,https://libra.dev"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	return c
}

func (c *config) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory: database, artifacts, working directories (env DATA_DIR)")
}

func (c *config) serveFlags(fs *flag.FlagSet) {
	c.commonFlags(fs)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address HOST:PORT (env PORT sets the port)")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent", c.MaxConcurrent, "deployments run at once on this node (env MAX_CONCURRENT_DEPLOYMENTS)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "deadline of one deployment attempt (env MAX_DEPLOYMENT_TIMEOUT, in ms)")
	fs.StringVar(&c.SitesDomain, "sites-domain", c.SitesDomain, "domain that sites are served under (env SITES_DOMAIN)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (env LOG_LEVEL)")
}

func (c *config) dbPath() string       { return filepath.Join(c.DataDir, "libra.db") }
func (c *config) artifactsDir() string { return filepath.Join(c.DataDir, "artifacts") }
func (c *config) workDir() string      { return filepath.Join(c.SandboxRoot, "work") }
func (c *config) lockPath() string     { return filepath.Join(c.DataDir, "serve.lock") }
func (c *config) logger() *slog.Logger { return newLogger(c.LogLevel) }
func (c *config) validate() error {
	if err := validateNodeID(c.NodeID); err != nil {
		return err
	}
	if err := c.Leases.validate(); err != nil {
		return err
	}
	if c.Webhooks.err != nil {
		return c.Webhooks.err
	}
	if c.MaxConcurrent < 1 {
		return fmt.Errorf("MAX_CONCURRENT_DEPLOYMENTS must be at least 1")
	}
	if c.Timeout < time.Second {
		return fmt.Errorf("MAX_DEPLOYMENT_TIMEOUT must be at least 1000 ms")
	}
	if c.BuildLogLimitMB < 1 {
		return fmt.Errorf("BUILD_LOG_LIMIT_MB must be at least 1")
	}
	if _, err := c.proxyPorts(); err != nil {
		return err
	}
	if c.SandboxProxyConns < 1 {
		return fmt.Errorf("SANDBOX_PROXY_MAX_CONNS must be at least 1")
	}
	if c.MaxHeaderBytes < minMaxHeaderBytes || c.MaxHeaderBytes > http.DefaultMaxHeaderBytes {
		return fmt.Errorf("MAX_HEADER_BYTES must be between %d and %d", minMaxHeaderBytes, http.DefaultMaxHeaderBytes)
	}
	if c.writeTimeoutErr != nil {
		return c.writeTimeoutErr
	}
	if c.WriteTimeout < time.Second {
		return fmt.Errorf("WRITE_TIMEOUT must be at least 1s")
	}
	return nil
}

// proxyPorts parses SANDBOX_PROXY_PORTS.
func (c *config) proxyPorts() ([]int, error) {
	var ports []int
	for _, f := range strings.Split(c.SandboxProxyPorts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("SANDBOX_PROXY_PORTS %q: want comma-separated ports (1-65535)", c.SandboxProxyPorts)
		}
		ports = append(ports, n)
	}
	return ports, nil
}

// net/http's default of 1 MiB let anyone make the server hold a megabyte
// per request for nothing (issue 8); 32 KiB still fits large cookies.
const (
	defaultMaxHeaderBytes = 32 << 10
	minMaxHeaderBytes     = 1 << 10
)

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func (c *config) sandboxDir() string { return filepath.Join(c.SandboxRoot, "state") }
func (c *config) cacheDir() string   { return filepath.Join(c.SandboxRoot, "cache") }
