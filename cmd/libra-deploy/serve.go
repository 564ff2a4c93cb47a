package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/api"
	"github.com/libra-deploy/libra-deploy/build"
	"github.com/libra-deploy/libra-deploy/internal/http1"
	"github.com/libra-deploy/libra-deploy/internal/metrics"
	"github.com/libra-deploy/libra-deploy/sitehost"
	"github.com/libra-deploy/libra-deploy/webhook"
	"github.com/libra-deploy/libra-deploy/workflow"
)

// service holds the parts one serve process runs; runServe builds them in
// order with the functions below, each of which wires one component.
type service struct {
	c         *config
	log       *slog.Logger
	started   time.Time
	artifacts *artifactStores
	sandboxes libra.SandboxProvider
	runner    *workflow.Runner
	db        stateStore
	queue     jobQueue
	sites     *sitehost.Host
	// admin are the routes only ADMIN_TOKEN opens (metrics.go).
	admin map[string]http.Handler
	// envSecrets seals and opens projects' build secrets (secretkey.go).
	envSecrets *lazyBox
}

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	c, gcc, err := serveConfig(args)
	if err != nil {
		return err
	}
	s := &service{c: c, log: c.logger(), started: time.Now()}
	unlock, err := prepareDataDir(c, s.log)
	if err != nil {
		return err
	}
	defer unlock()
	closeState, err := s.open(ctx)
	if err != nil {
		return err
	}
	defer closeState()
	stopOps, err := s.startOps(ctx)
	if err != nil {
		return err
	}
	defer stopOps()
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv, stopHTTPS, verifyDomain, err := s.httpServer(ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		return err
	}
	stopLeases := s.startLeases(ctx)
	defer stopLeases()
	stopCancels := s.startCancels(ctx)
	defer stopCancels()
	if err := s.queue.Start(ctx); err != nil {
		return err
	}
	stopWatch := s.watchSites(ctx)
	defer stopWatch()
	// Invalidate drops the cached lookups of {label}.{sites domain}: given
	// a deployment's site label, those of its immutable host.
	stopGC := startGC(ctx, gcc, s.db, s.artifacts, s.sites.Invalidate, s.log)
	defer stopGC()
	stopDomainChecks := startDomainChecks(ctx, &domainChecker{store: s.db, verify: verifyDomain,
		interval: c.DomainCheckInterval, invalidate: s.sites.Invalidate, log: s.log})
	defer stopDomainChecks()
	return s.serveUntilDone(ctx, srv, ln, stdout, stopHTTPS)
}

// serveConfig reads the environment and serve's flags, and checks them.
func serveConfig(args []string) (*config, *gcConfig, error) {
	c := loadConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.serveFlags(fs)
	gcc, err := loadGCConfig() // retention and garbage collection: releases.go
	if err != nil {
		return nil, nil, err
	}
	gcc.flags(fs, true)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	if err := gcc.validate(c.Timeout); err != nil {
		return nil, nil, err
	}
	// Absolute, because the sandbox binds paths under it into builds.
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	c.DataDir = abs
	return c, gcc, nil
}

// prepareDataDir creates the data directory, takes its lock (one serve per
// data directory) and settles the sandbox root; the returned func unlocks.
func prepareDataDir(c *config, logger *slog.Logger) (func(), error) {
	// 0711: only for a sandbox root that falls back into the data
	// directory (see resolveSandboxRoot); every file in it is private.
	if err := os.MkdirAll(c.DataDir, 0o711); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(c.DataDir, 0o711); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(c.lockPath())
	if err != nil {
		return nil, err
	}
	// Working directories, caches and sandbox state live under a root the
	// build uids can reach whatever the data directory's parents are.
	if err := resolveSandboxRoot(c, logger); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// open opens the artifact store, the sandboxes, the database and the
// queue, and recovers what an unclean stop left; the returned func closes
// what it opened.
func (s *service) open(ctx context.Context) (func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var err error
	if s.artifacts, err = openArtifacts(ctx, s.c, s.log); err != nil {
		return nil, err
	}
	sandboxes, closeSandboxes := newSandboxes(ctx, s.c, s.log)
	s.sandboxes = sandboxes
	closers = append(closers, closeSandboxes)
	if s.runner, err = s.newRunner(ctx); err != nil {
		closeAll()
		return nil, err
	}
	db, q, err := openState(ctx, s.c, s.runner, s.log)
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, func() { db.Close() })
	s.db, s.queue, s.runner.Store = db, q, db
	if err := s.recover(ctx); err != nil {
		closeAll()
		return nil, err
	}
	return closeAll, nil
}

func (s *service) newRunner(ctx context.Context) (*workflow.Runner, error) {
	c := s.c
	hooks, err := testHooks(c.TestHooks)
	if err != nil {
		return nil, err
	}
	if s.envSecrets, err = secretBox(c.DataDir, postgresURL() != ""); err != nil {
		return nil, err
	}
	target, err := deployTarget()
	if err != nil {
		return nil, err
	}
	return &workflow.Runner{
		Target:          target,
		Artifacts:       s.artifacts.Store,
		Sandboxes:       s.sandboxes,
		WorkRoot:        c.workDir(),
		SitesDomain:     c.SitesDomain,
		APIHosts:        c.APIHosts,
		Timeout:         c.Timeout,
		BuildOptions:    build.Options{DefaultPackageManager: defaultPackageManager(ctx, c, s.log), NodeVersion: nodeVersion(ctx)},
		BuildCache:      build.NewCache(filepath.Join(c.cacheDir(), "builds")),
		ReuseBuilds:     c.ReuseBuilds,
		InstallTimeout:  c.InstallTimeout,
		BuildTimeout:    c.BuildTimeout,
		Secrets:         c.secrets(),
		Env:             s.envSecrets,
		MaxOutputBytes:  int64(c.OutputLimitMB) << 20,
		BuildLogLimit:   int64(c.BuildLogLimitMB) << 20,
		DeadLetterQueue: c.DLQName,
		BeforeStep:      hooks,
		Logger:          s.log,
	}, nil
}

// recover hands back the jobs a process that died mid-deployment left
// "running" (SQLite: this node was the only one), fails deployments that can
// never finish, and clears the old working directories, before any work
// starts.
func (s *service) recover(ctx context.Context) error {
	rescued, lost, err := s.db.RecoverAtStart(ctx, s.c.QueueName)
	if err != nil {
		return err
	}
	if rescued > 0 || lost > 0 {
		s.log.Warn("recovered from an unclean stop", "jobs_requeued", rescued, "deployments_failed", lost)
	}
	if err := os.RemoveAll(s.c.workDir()); err != nil {
		return fmt.Errorf("clear working directories: %w", err)
	}
	if err := os.MkdirAll(s.c.workDir(), 0o711); err != nil {
		return fmt.Errorf("create working directories: %w", err)
	}
	return nil
}

// httpServer builds the site host, the API and the HTTPS listener (when
// configured) for a service listening on port.
func (s *service) httpServer(port int) (*http1.Server, func(context.Context), verifyFunc, error) {
	c := s.c
	s.runner.SiteURL = siteURL(c.SitesScheme, c.SitesDomain, port)
	s.sites = sitehost.New(sitehost.Config{
		SitesDomain: c.SitesDomain,
		Resolver:    s.db,
		Artifacts:   s.artifacts.Serving,
		Logger:      s.log,
		APIHosts:    c.APIHosts,
		AliasTTL:    s.aliasTTL(),
	})
	sites := s.sites
	s.runner.Published = func(projectID string) { sites.Invalidate(strings.ToLower(projectID)) }
	verifyDomain, err := domainVerifier(c, s.log)
	if err != nil {
		return nil, nil, nil, err
	}
	hc := loadHTTPSConfig()
	hc.WriteTimeout = c.WriteTimeout
	streams := newStreamStop()
	handler, stopHTTPS, err := startHTTPS(hc, c.DataDir, s.db,
		libra.NewHostPolicy(c.SitesDomain, c.APIHosts), s.apiHandler(verifyDomain, streams.stopping), port, s.log)
	if err != nil {
		return nil, nil, nil, err
	}
	return &http1.Server{
		HTTP: streams.register(&http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    c.MaxHeaderBytes,
		}),
		// Plain GETs of published sites take the fast loop; the API, ACME
		// challenges and everything unusual stay on net/http.
		Fast: func(r *http.Request) bool {
			return !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") && sites.IsSiteHost(r.Host)
		},
		Disabled:     !c.FastPath,
		WriteTimeout: c.WriteTimeout,
		Logger:       s.log,
		Served:       metrics.SiteServed,
	}, stopHTTPS, verifyDomain, nil
}

// clusterAliasTTL is how long a node trusts a host lookup when the store
// announces every production flip (PostgreSQL): changes arrive by NOTIFY, or
// within a second by the generation poll, so the TTL only bounds changes
// made behind the service's back (SQL by hand), and a longer one saves the
// database a query per host name and second on every node.
const clusterAliasTTL = 30 * time.Second

// aliasTTL is sitehost's default (1 s) on a store of one node's, where other
// processes (admin commands) learn of nothing, and clusterAliasTTL where
// flips are announced.
func (s *service) aliasTTL() time.Duration {
	if _, ok := s.db.(libra.SiteEvents); ok {
		return clusterAliasTTL
	}
	return 0
}

// watchSites keeps the site host's lookups in step with production flips
// made on any node, when the store announces them; stop waits for it.
func (s *service) watchSites(ctx context.Context) (stop func()) {
	events, ok := s.db.(libra.SiteEvents)
	if !ok {
		return func() {}
	}
	// Not ended by serve's own context: sites are still served during
	// the shutdown grace, so flips still matter until stop.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		events.WatchSites(ctx, s.sites)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (s *service) apiHandler(verifyDomain verifyFunc, stopping <-chan struct{}) http.Handler {
	c := s.c
	return api.New(api.Config{
		EventKeepAlive: eventsKeepAlive(),
		Stopping:       stopping,
		Store:          s.db,
		Artifacts:      s.artifacts.Store,
		Sites:          s.sites,
		Checks: map[string]func(context.Context) error{
			"database": s.db.Ping,
			"queue":    s.queue.Check,
		},
		// Informational: without either, published sites still serve.
		InfoChecks: map[string]func(context.Context) error{
			"sandbox":   s.sandboxes.Check,
			"artifacts": s.artifacts.Check,
		},
		Version:      version,
		StartedAt:    s.started,
		CORSOrigins:  c.CORSOrigins,
		RateLimit:    rateLimit(c.RateLimit),
		RateBurst:    c.RateBurst,
		SitesDomain:  c.SitesDomain,
		SiteURL:      s.runner.SiteURL,
		Invalidate:   s.sites.Invalidate,
		Republish:    republisher(s.runner.Target, s.db, s.artifacts.Store),
		DomainStates: domainStates(s.runner.Target),
		Logger:       s.log,
		APIHosts:     c.APIHosts,
		VerifyDomain: verifyDomain,
		AdminToken:   adminToken(),
		Admin:        s.admin,
		SiteServed:   metrics.SiteServed,
		EnvSealer:    s.envSecrets,

		CheckWebhookURL: webhook.NewSender(c.Webhooks.AllowPrivate).CheckURL,
	})
}

// serveUntilDone serves on ln until ctx ends, then stops taking requests and
// gives running deployments the grace period before handing their jobs back.
func (s *service) serveUntilDone(ctx context.Context, srv *http1.Server, ln net.Listener, stdout io.Writer, stopHTTPS func(context.Context)) error {
	c := s.c
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.log.Info("libra-deploy serving", "node_id", c.NodeID, "addr", ln.Addr().String(), "data_dir", c.DataDir, "sandbox_root", c.SandboxRoot, "version", version,
		"max_concurrent", c.MaxConcurrent, "queue", c.QueueName, "sites_domain", c.SitesDomain)
	// Also on stdout, whatever the log level: scripts (and the tests) wait
	// for this line, and with --addr :0 it is how they learn the port.
	fmt.Fprintf(stdout, "libra-deploy listening on http://%s\n", ln.Addr())

	select {
	case <-ctx.Done():
		s.log.Info("shutting down: no new requests; running deployments get a grace period", "grace", c.ShutdownGrace)
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("http shutdown", "err", err)
	}
	stopHTTPS(sctx)
	if err := s.queue.Stop(sctx); err != nil {
		s.log.Warn("queue shutdown", "err", err)
	}
	s.log.Info("stopped")
	return nil
}

// siteURL returns the function that names a deployment's immutable URL.
func siteURL(scheme, domain string, port int) func(string) string {
	suffix := "." + domain
	if !(scheme == "http" && port == 80 || scheme == "https" && port == 443) {
		suffix += ":" + strconv.Itoa(port)
	}
	return func(id string) string { return scheme + "://" + id + suffix + "/" }
}

// lockDataDir makes sure one `serve` works a data directory: start-up treats
// every running job as an orphan, which is only true if no other serve is
// alive. The lock goes with the process, however it dies.
func lockDataDir(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another libra-deploy serve is using %s", filepath.Dir(path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func rateLimit(rps float64) rate.Limit { return rate.Limit(rps) }
