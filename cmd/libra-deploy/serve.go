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

	"github.com/libra-deploy/libra-deploy/api"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
	"github.com/libra-deploy/libra-deploy/sitehost"
	"github.com/libra-deploy/libra-deploy/workflow"
)

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	c := loadConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.serveFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	logger := c.logger()
	started := time.Now()

	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	unlock, err := lockDataDir(c.lockPath())
	if err != nil {
		return err
	}
	defer unlock()

	artifacts, err := artifactfs.New(c.artifactsDir())
	if err != nil {
		return err
	}
	hooks, err := testHooks(c.TestHooks)
	if err != nil {
		return err
	}
	runner := &workflow.Runner{
		Artifacts:   artifacts,
		WorkRoot:    c.workDir(),
		SitesDomain: c.SitesDomain,
		Timeout:     c.Timeout,
		BeforeStep:  hooks,
		Logger:      logger,
	}
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

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	runner.SiteURL = siteURL(c.SitesScheme, c.SitesDomain, port)

	sites := sitehost.New(sitehost.Config{
		SitesDomain: c.SitesDomain,
		Resolver:    db,
		Artifacts:   artifacts,
		Logger:      logger,
	})
	runner.Published = func(projectID string) { sites.Invalidate(strings.ToLower(projectID)) }

	handler := api.New(api.Config{
		Store:     db,
		Artifacts: artifacts,
		Sites:     sites,
		Checks: map[string]func(context.Context) error{
			"database": db.Ping,
			"queue":    q.Check,
		},
		Version:     version,
		StartedAt:   started,
		CORSOrigins: c.CORSOrigins,
		RateLimit:   rateLimit(c.RateLimit),
		RateBurst:   c.RateBurst,
		SitesDomain: c.SitesDomain,
		Logger:      logger,
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}

	if err := q.Start(ctx); err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("libra-deploy serving", "addr", ln.Addr().String(), "data_dir", c.DataDir, "version", version,
		"max_concurrent", c.MaxConcurrent, "queue", c.QueueName, "sites_domain", c.SitesDomain)

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
