package main

import (
	"context"
	"fmt"
	"time"

	"github.com/libra-deploy/libra-deploy/workflow"
)

// Leases: every node heartbeats, holds a lease on each deployment it runs,
// and reaps expired leases (see libra.LeaseStore). On SQLite the one node
// does the same, which fences a run that outlived its lease there too.

// leaseConfig is LEASE_DURATION and MAX_LEASE_RECLAIMS.
type leaseConfig struct {
	// TTL is how long a lease lasts unrenewed: how long a dead node's
	// deployments wait before another node takes them. It is renewed
	// every quarter of it and reaped within an eighth of it.
	TTL time.Duration
	// MaxReclaims is how many times a deployment may be taken back from a
	// dead node before it is dead-lettered instead.
	MaxReclaims int
	err         error
}

func loadLeaseConfig() leaseConfig {
	lc := leaseConfig{MaxReclaims: envInt("MAX_LEASE_RECLAIMS", 3)}
	lc.TTL, lc.err = envDuration("LEASE_DURATION", 8*time.Second)
	return lc
}

func (lc leaseConfig) validate() error {
	switch {
	case lc.err != nil:
		return lc.err
	case lc.TTL < time.Second || lc.TTL > 10*time.Minute:
		return fmt.Errorf("LEASE_DURATION must be between 1s and 10m")
	case lc.MaxReclaims < 0:
		return fmt.Errorf("MAX_LEASE_RECLAIMS must be 0 or more")
	}
	return nil
}

// renewEvery leaves a lease three failed renewals of slack.
func (lc leaseConfig) renewEvery() time.Duration { return lc.TTL / 4 }

// reapEvery bounds how long an expired lease waits for a reaper: 1 s at
// the default 8 s lease, never more than 2 s.
func (lc leaseConfig) reapEvery() time.Duration { return min(lc.TTL/8, 2*time.Second) }

// startLeases makes the runner hold leases and starts this node's heartbeat
// and reaper; the returned func stops them. It must run before the queue
// starts, so that no job runs without a lease.
func (s *service) startLeases(ctx context.Context) func() {
	lc := s.c.Leases
	s.runner.Leases = &workflow.Leases{Store: s.db, Node: s.c.NodeID, TTL: lc.TTL, RenewEvery: lc.renewEvery(), Logger: s.log}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.reapLoop(ctx, lc)
	}()
	return func() { cancel(); <-done }
}

func (s *service) reapLoop(ctx context.Context, lc leaseConfig) {
	t := time.NewTicker(lc.reapEvery())
	defer t.Stop()
	for {
		s.heartbeatAndReap(ctx, lc)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *service) heartbeatAndReap(ctx context.Context, lc leaseConfig) {
	if err := s.db.Heartbeat(ctx, s.c.NodeID); err != nil && ctx.Err() == nil {
		s.log.Warn("node heartbeat", "err", err)
	}
	reclaimed, err := s.db.ReapLeases(ctx, lc.TTL, lc.MaxReclaims, 100)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("lease reaper", "err", err)
	}
	for _, r := range reclaimed {
		s.log.Warn("took back a deployment whose node stopped renewing its lease", "deployment", r.DeploymentID,
			"from_node", r.FromNode, "epoch", r.Epoch, "reclaims", r.Reclaims, "dead_lettered", r.DeadLettered,
			"cancelled", r.Cancelled)
	}
}
