package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// DefaultCancelPoll is how often a run reads whether its deployment's
// cancel was requested, in case the store's announcement never reached
// this node: one row read by primary key per running deployment.
const DefaultCancelPoll = 500 * time.Millisecond

// Cancels stops runs whose deployment's cancel was requested, on whichever
// node the request arrived: the store announces requests (WatchCancels) and
// each run also polls, so a lost announcement costs at most one Poll. A run
// it stops has its context cancelled with libra.ErrCancelled as the cause,
// which kills the build's processes; the run then cleans up and ends the
// deployment cancelled.
type Cancels struct {
	Store libra.CancelStore
	// Poll is the safety net's interval (0: DefaultCancelPoll).
	Poll   time.Duration
	Logger *slog.Logger

	mu      sync.Mutex
	running map[string]chan struct{}
}

// Listen hands the store's announcements to the runs they name until ctx
// ends.
func (c *Cancels) Listen(ctx context.Context) error {
	if err := c.Store.WatchCancels(ctx, c.wake); err != nil {
		return fmt.Errorf("watch cancel requests: %w", err)
	}
	return nil
}

// wake tells the run of deployment id, if this node has one, to check now.
// It never blocks: the store may call it holding a lock.
func (c *Cancels) wake(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case c.running[id] <- struct{}{}:
	default: // not running here, or a check is already due
	}
}

// watch returns a context that ends, with cause libra.ErrCancelled, once
// deployment id's cancel is requested, and the function that stops
// watching. It checks once at once: a request may predate this run.
func (c *Cancels) watch(ctx context.Context, id string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	woken := make(chan struct{}, 1)
	woken <- struct{}{}
	c.mu.Lock()
	if c.running == nil {
		c.running = map[string]chan struct{}{}
	}
	c.running[id] = woken
	c.mu.Unlock()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		c.poll(ctx, id, woken, done, cancel)
	}()
	return ctx, func() {
		c.mu.Lock()
		delete(c.running, id)
		c.mu.Unlock()
		close(done)
		<-stopped
		cancel(nil)
	}
}

func (c *Cancels) poll(ctx context.Context, id string, woken, done <-chan struct{}, cancel context.CancelCauseFunc) {
	every := c.Poll
	if every <= 0 {
		every = DefaultCancelPoll
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-woken:
		case <-t.C:
		}
		requested, err := c.Store.CancelRequested(context.WithoutCancel(ctx), id)
		if err != nil && !errors.Is(err, libra.ErrNotFound) {
			c.Logger.Warn("check cancel request", "deployment", id, "err", err)
			continue
		}
		if requested {
			c.Logger.Info("cancel requested: stopping the deployment's run", "deployment", id)
			cancel(libra.ErrCancelled)
			return
		}
	}
}

// watchCancel is Cancels.watch when the runner has Cancels.
func (r *Runner) watchCancel(ctx context.Context, id string) (context.Context, func()) {
	if r.Cancels == nil {
		return ctx, func() {}
	}
	return r.Cancels.watch(ctx, id)
}

// conclude ends the attempt: cancelled when that was asked for, else as
// finish decides.
func (ru *run) conclude(bg, ctx context.Context, failed error, step libra.Step, attempt, maxAttempts int) error {
	if ru.cancelled(bg, ctx, failed) {
		return ru.endCancelled(bg, step)
	}
	return ru.finish(bg, ctx, failed, step, attempt, maxAttempts)
}

// cancelled reports whether the run ends because its deployment's cancel
// was requested. A published deployment completes whatever was asked: the
// store refused the request once Publish had committed.
func (ru *run) cancelled(bg, ctx context.Context, failed error) bool {
	switch {
	case ru.published || failed == nil:
		return false
	case errors.Is(context.Cause(ctx), libra.ErrCancelled), errors.Is(failed, libra.ErrCancelled):
		return true
	}
	// A step failed on its own while a request was on its way: the
	// request was accepted (202), so it is honoured.
	requested, err := ru.r.Store.CancelRequested(bg, ru.d.ID)
	return err == nil && requested
}

// endCancelled ends the deployment cancelled: the step it stopped in shows
// failed with error "cancelled", and the quota comes back if the build
// never began (once it did, its resources were spent). The job completes:
// a cancelled deployment is never retried.
func (ru *run) endCancelled(bg context.Context, step libra.Step) error {
	d := ru.d
	refund := !d.Steps.BuildBegan()
	now := libra.Now()
	if step != "" {
		ru.fail(step, cancelledMessage)
	}
	d.Status, d.CurrentStep, d.Error, d.FinishedAt = libra.StatusCancelled, "", cancelledMessage, &now
	msg := fmt.Sprintf("deployment cancelled during the %s step", step)
	if refund {
		if err := ru.r.Store.RefundQuota(bg, d.ID); err != nil {
			return fmt.Errorf("refund quota: %w", err)
		}
		msg += "; quota given back: the build never began"
	}
	ru.logs.Add(libra.StepCleanup, "warn", msg)
	return ru.save(bg)
}

// cancelledMessage is the error a cancelled deployment and its stopped step
// show (the same as the store's, storesql.CancelledMessage).
const cancelledMessage = "cancelled"
