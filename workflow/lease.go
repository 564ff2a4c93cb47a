package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Leases makes a Runner hold a lease on each deployment it runs (see
// libra.LeaseStore): taken before the first write, renewed in the
// background, given up at the end. When the lease is lost the run's context
// is cancelled with libra.ErrLeaseLost, which kills its build, and its
// writes fail in the store, so it publishes and writes nothing more.
type Leases struct {
	Store libra.LeaseStore
	// Node is this process's NODE_ID.
	Node string
	// TTL is how long a lease lasts unrenewed; RenewEvery is how often it
	// is renewed. RenewEvery must leave room for a few failed renewals
	// (a slow database) before TTL runs out: a quarter of it does.
	TTL        time.Duration
	RenewEvery time.Duration
	Logger     *slog.Logger
}

// hold takes the lease on deployment id and returns a context that carries
// it, and the function that gives it up. ErrLeaseHeld: another node runs
// the deployment; ErrNotFound: it is final or gone.
func (lc *Leases) hold(ctx context.Context, id string) (context.Context, func(), error) {
	l, err := lc.Store.AcquireLease(ctx, id, lc.Node, lc.TTL)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(libra.WithLease(ctx, l))
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		lc.keep(ctx, l, cancel, done)
	}()
	release := func() {
		close(done)
		<-stopped
		cancel(nil)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), lc.TTL)
		defer rcancel()
		if err := lc.Store.ReleaseLease(rctx, l); err != nil {
			lc.Logger.Warn("release lease", "deployment", id, "epoch", l.Epoch, "err", err)
		}
	}
	return ctx, release, nil
}

// keep renews the lease until done. It gives up (cancelling the run) when
// the store says the lease is another's, and also when no renewal has
// succeeded for a whole TTL: by then a reaper may have taken it, and a
// process that was paused (SIGSTOP) must assume so before doing anything.
func (lc *Leases) keep(ctx context.Context, l libra.Lease, cancel context.CancelCauseFunc, done <-chan struct{}) {
	t := time.NewTicker(lc.RenewEvery)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if time.Since(renewed) > lc.TTL {
			lc.lost(l, cancel, fmt.Errorf("no renewal for %s: %w", time.Since(renewed).Round(time.Millisecond), libra.ErrLeaseLost))
			return
		}
		sent := time.Now()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), lc.RenewEvery)
		err := lc.Store.RenewLease(rctx, l, lc.TTL)
		rcancel()
		switch {
		case err == nil:
			renewed = sent
		case errors.Is(err, libra.ErrLeaseLost):
			lc.lost(l, cancel, err)
			return
		default:
			lc.Logger.Warn("renew lease", "deployment", l.DeploymentID, "epoch", l.Epoch, "err", err)
		}
	}
}

func (lc *Leases) lost(l libra.Lease, cancel context.CancelCauseFunc, err error) {
	lc.Logger.Warn("lease lost: stopping the deployment's run here; another node runs it",
		"deployment", l.DeploymentID, "epoch", l.Epoch, "err", err)
	cancel(err)
}

// leaseLost reports whether a run ended because its lease was lost, by its
// context's cause or by a write the store refused.
func leaseLost(ctx context.Context, err error) bool {
	return errors.Is(context.Cause(ctx), libra.ErrLeaseLost) || errors.Is(err, libra.ErrLeaseLost)
}
