package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	"github.com/libra-deploy/libra-deploy/sitehost"
	"github.com/libra-deploy/libra-deploy/workflow"
)

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	c := loadConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.serveFlags(fs)
	gcc, err := loadGCConfig() // retention and garbage collection: releases.go
	if err != nil {
		return err
	}
	gcc.flags(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if err := gcc.validate(c.Timeout); err != nil {
		return err
	}
	// Absolute, because the sandbox binds paths under it into builds.
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	c.DataDir = abs
	logger := c.logger()
	started := time.Now()

	// 0711: only for a sandbox root that falls back into the data
	// directory (see resolveSandboxRoot); every file in it is private.
	if err := os.MkdirAll(c.DataDir, 0o711); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(c.DataDir, 0o711); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(c.lockPath())
	if err != nil {
		return err
	}
	defer unlock()
	// Working directories, caches and sandbox state live under a root the
	// build uids can reach whatever the data directory's parents are.
	if err := resolveSandboxRoot(c, logger); err != nil {
		return err
	}

	artifacts, err := openArtifacts(ctx, c, logger)
	if err != nil {
		return err
	}
	hooks, err := testHooks(c.TestHooks)
	if err != nil {
		return err
	}
	sandboxes, closeSandboxes := newSandboxes(ctx, c, logger)
	defer closeSandboxes()
	runner := &workflow.Runner{
		Artifacts:       artifacts.Store,
		Sandboxes:       sandboxes,
		WorkRoot:        c.workDir(),
		SitesDomain:     c.SitesDomain,
		Timeout:         c.Timeout,
		BuildOptions:    build.Options{DefaultPackageManager: c.DefaultPackageMgr, NodeVersion: nodeVersion(ctx)},
		BuildCache:      build.NewCache(filepath.Join(c.cacheDir(), "builds")),
		InstallTimeout:  c.InstallTimeout,
		BuildTimeout:    c.BuildTimeout,
		Secrets:         c.secrets(),
		MaxOutputBytes:  int64(c.OutputLimitMB) << 20,
		BuildLogLimit:   int64(c.BuildLogLimitMB) << 20,
		DeadLetterQueue: c.DLQName,
		BeforeStep:      hooks,
		Logger:          logger,
	}
	runner.APIHosts = c.APIHosts
	db, q, err := openState(ctx, c, runner, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	runner.Store = db

	// A process that died mid-deployment left its jobs "running" and maybe
	// deployments that can never finish: hand the jobs back before working.
	rescued, err := db.RescueOrphans(ctx, c.QueueName)
	if err != nil {
		return err
	}
	lost, err := db.FailLostDeployments(ctx)
	if err != nil {
		return err
	}
	if rescued > 0 || lost > 0 {
		logger.Warn("recovered from an unclean stop", "jobs_requeued", rescued, "deployments_failed", lost)
	}
	if err := os.RemoveAll(c.workDir()); err != nil {
		return fmt.Errorf("clear working directories: %w", err)
	}
	if err := os.MkdirAll(c.workDir(), 0o711); err != nil {
		return fmt.Errorf("create working directories: %w", err)
	}

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	runner.SiteURL = siteURL(c.SitesScheme, c.SitesDomain, port)

	sites := sitehost.New(sitehost.Config{
		SitesDomain: c.SitesDomain,
		Resolver:    db,
		Artifacts:   artifacts.Serving,
		Logger:      logger,

		APIHosts: c.APIHosts,
	})
	runner.Published = func(projectID string) { sites.Invalidate(strings.ToLower(projectID)) }

	verifyDomain, err := domainVerifier(c, logger)
	if err != nil {
		return err
	}
	handler := api.New(api.Config{
		Store:     db,
		Artifacts: artifacts.Store,
		Sites:     sites,
		Checks: map[string]func(context.Context) error{
			"database": db.Ping,
			"queue":    q.Check,
		},
		// Informational: without either, published sites still serve.
		InfoChecks:  map[string]func(context.Context) error{"sandbox": sandboxes.Check, "artifacts": artifacts.Check},
		Version:     version,
		StartedAt:   started,
		CORSOrigins: c.CORSOrigins,
		RateLimit:   rateLimit(c.RateLimit),
		RateBurst:   c.RateBurst,
		SitesDomain: c.SitesDomain,
		SiteURL:     runner.SiteURL,
		Invalidate:  sites.Invalidate,
		Logger:      logger,

		APIHosts:     c.APIHosts,
		VerifyDomain: verifyDomain,
	})
	handler, stopHTTPS, err := startHTTPS(loadHTTPSConfig(), c.DataDir, db,
		libra.NewHostPolicy(c.SitesDomain, c.APIHosts), handler, port, logger)
	if err != nil {
		return err
	}
	srv := &http1.Server{
		HTTP: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    c.MaxHeaderBytes,
		},
		// Plain GETs of published sites take the fast loop; the API, ACME
		// challenges and everything unusual stay on net/http.
		Fast: func(r *http.Request) bool {
			return !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") && sites.IsSiteHost(r.Host)
		},
		Disabled: !c.FastPath,
		Logger:   logger,
	}

	if err := q.Start(ctx); err != nil {
		return err
	}
	// Invalidate drops the cached lookups of {label}.{sites domain}: given
	// a deployment's site label, those of its immutable host.
	stopGC := startGC(ctx, gcc, db, artifacts, sites.Invalidate, logger)
	defer stopGC()
	stopDomainChecks := startDomainChecks(ctx, &domainChecker{store: db, verify: verifyDomain,
		interval: c.DomainCheckInterval, invalidate: sites.Invalidate, log: logger})
	defer stopDomainChecks()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("libra-deploy serving", "addr", ln.Addr().String(), "data_dir", c.DataDir, "sandbox_root", c.SandboxRoot, "version", version,
		"max_concurrent", c.MaxConcurrent, "queue", c.QueueName, "sites_domain", c.SitesDomain)
	// Also on stdout, whatever the log level: scripts (and the tests) wait
	// for this line, and with --addr :0 it is how they learn the port.
	fmt.Fprintf(stdout, "libra-deploy listening on http://%s\n", ln.Addr())

	select {
	case <-ctx.Done():
		logger.Info("shutting down: no new requests; running deployments get a grace period", "grace", c.ShutdownGrace)
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("http shutdown", "err", err)
	}
	stopHTTPS(sctx)
	if err := q.Stop(sctx); err != nil {
		logger.Warn("queue shutdown", "err", err)
	}
	logger.Info("stopped")
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
