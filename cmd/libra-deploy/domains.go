package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/dnsverify"
)

// verifyFunc checks a domain's TXT record for a project's token.
type verifyFunc func(ctx context.Context, domain, token string) libra.DomainCheck

// domainVerifier returns the check behind POST /projects/{id}/domains/{domain}/verify.
// A DNS_RESOLVER that is set but wrong stops start-up; without one, a host
// whose /etc/resolv.conf names no server still serves, and verification
// answers 503 until it is configured.
func domainVerifier(c *config, logger *slog.Logger) (verifyFunc, error) {
	v, err := dnsverify.New(c.DNSResolver, 0)
	if err != nil && c.DNSResolver != "" {
		return nil, err
	}
	if err != nil {
		logger.Warn("custom domain verification is off: set DNS_RESOLVER", "error", err)
		return nil, nil
	}
	return v.Check, nil
}

const (
	// pendingBatch bounds the domains one background round checks; each
	// check is one DNS query of at most a few seconds, done in turn.
	pendingBatch = 50
	// pendingFor is how long after being attached a pending domain is
	// still checked in the background; after that only the verify route
	// checks it, so that abandoned domains cost nothing.
	pendingFor = 7 * 24 * time.Hour
)

// domainChecker verifies pending domains in the background, so that a
// domain whose TXT record appears is served without anyone asking again.
// State lives in the store: with several nodes each checks, and a domain
// checked by one is not due on the others until interval has passed.
type domainChecker struct {
	store      libra.ReleaseStore
	verify     verifyFunc
	interval   time.Duration
	invalidate func(projectHost string)
	log        *slog.Logger
}

// startDomainChecks runs the checker every interval until stop is called;
// with interval 0 or no verifier it does nothing.
func startDomainChecks(ctx context.Context, c *domainChecker) (stop func()) {
	if c.interval <= 0 || c.verify == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(c.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.round(ctx)
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// round checks the pending domains that are due, least recently checked
// first. A failed check only records why: the background never makes a
// domain pending, so a DNS hiccup cannot take a site down.
func (c *domainChecker) round(ctx context.Context) {
	now := libra.Now()
	due, err := c.store.PendingDomains(ctx, now.Add(-pendingFor), now.Add(-c.interval), pendingBatch)
	if err != nil {
		c.log.Warn("pending domains", "error", err)
		return
	}
	for _, d := range due {
		if ctx.Err() != nil {
			return
		}
		check := c.verify(ctx, d.Domain, d.Token)
		check.Definitive = false
		if _, err := c.store.RecordDomainCheck(ctx, d.ProjectID, d.Domain, check); err != nil {
			c.log.Warn("record domain check", "domain", d.Domain, "error", err)
			continue
		}
		if check.Verified {
			c.invalidate(d.ProjectID)
			c.log.Info("custom domain verified", "project_id", d.ProjectID, "domain", d.Domain)
		}
	}
}
