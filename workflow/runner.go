// Package workflow runs a deployment through its six steps: validate, sync,
// sandbox, build, deploy and cleanup, one file each.
//
// The steps talk only to libra's interfaces (store, artifact store, sandbox
// provider), never to a database or a queue: package queue calls Runner.Run
// for each job attempt and turns its error into River's verdict.
//
// Every step records its state, timestamp and error as it happens, so a
// client polling /deploy-status sees the deployment move, and a process that
// dies mid-step leaves a record that the next attempt simply overwrites.
// Steps are idempotent: sync builds a fresh working directory each attempt,
// deploy stores content-addressed blobs and publishes with "newest wins", and
// cleanup removes whatever exists.
package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/build"
	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// Runner runs deployments. Its fields are set once, at start-up.
type Runner struct {
	Store     libra.Store
	Artifacts libra.ArtifactStore
	// Sandboxes runs untrusted builds; nil means builds are not available
	// and only projects without a build step can deploy.
	Sandboxes libra.SandboxProvider
	// WorkRoot holds one working directory per running deployment.
	WorkRoot string
	// SitesDomain is the domain deployments are served under (custom
	// domains may not be under it).
	SitesDomain string
	// APIHosts are the API's own host names: reserved, like the sites
	// domain, so never attached as a custom domain.
	APIHosts []string
	// SiteURL returns the URL of a host label: a deployment's site label
	// for its immutable URL.
	SiteURL func(label string) string
	// Published is told when a project's alias may have moved, so the site
	// host can drop what it cached. May be nil.
	Published func(projectID string)
	// Timeout is the job deadline, only used to word the error when it passes.
	Timeout time.Duration
	// BuildOptions, BuildCache (may be nil), InstallTimeout and BuildTimeout
	// configure builds.
	BuildOptions   build.Options
	BuildCache     *build.Cache
	InstallTimeout time.Duration
	BuildTimeout   time.Duration
	// DeadLetterQueue names, in logs, where jobs that used up their
	// attempts go (DEPLOYMENT_DLQ_NAME).
	DeadLetterQueue string
	// MaxOutputBytes caps what one deployment publishes (0: 1 GiB).
	MaxOutputBytes int64
	// BuildLogLimit caps a build's full log, on disk while it runs and in
	// the artifact store (0: DefaultBuildLogLimit).
	BuildLogLimit int64
	// Secrets are values (API keys, database URLs) that must never appear
	// in a deployment's log; any line containing one is redacted.
	Secrets []string
	// Env opens projects' build secrets (env.go); nil when the server has
	// no secret key, and then a project with a secret cannot build.
	Env EnvOpener
	// BeforeStep, when set, runs before each step; an error it returns is
	// that step's error. Tests use it to slow a step or inject a fault; the
	// steps themselves do not know it exists.
	BeforeStep func(ctx context.Context, d *libra.Deployment, step libra.Step) error
	// ReuseBuilds publishes the output of an earlier build of the same
	// inputs instead of building again (buildreuse.go).
	ReuseBuilds bool
	// Target, when set, is where deployments are published (a Cloudflare
	// account); nil serves them from this service's own site host.
	Target libra.DeployTarget
	// Leases, when set, makes each run hold a lease on its deployment
	// (lease.go); nil runs without (tests of the steps alone).
	Leases *Leases
	// Cancels, when set, stops a run whose deployment's cancel is
	// requested (cancel.go); nil: runs are not cancelled.
	Cancels *Cancels
	Logger  *slog.Logger
}

// run is one attempt at one deployment.
type run struct {
	r       *Runner
	d       *libra.Deployment
	logs    *logBuffer
	workDir string
	plan    *build.Plan
	sandbox libra.Sandbox
	// env is the project's build environment, read when the sandbox step
	// plans a build.
	env map[string]string
	// reused is set by the sandbox step when an earlier build of the same
	// inputs is published instead of building (buildreuse.go).
	reused  *reusedBuild
	fullLog *fullLog
	// restored: node_modules came from the org's build cache.
	restored bool
	// outDir is the directory that deploy publishes, relative to workDir,
	// set by build.
	outDir string
	// worker is the project's Worker for the deploy target, set by build.
	worker *libra.Worker
	// sources maps each path sync wrote from a stored blob to that blob
	// (digest and size), set by sync.
	sources map[string]libra.Encoded
	// tree is set by sync when it wrote only the root level of a static
	// site (see staticTree); deploy then publishes from it.
	tree  staticTree
	files int
	// byDigest counts the files deploy published by their source's digest.
	byDigest int
	bytes    int64
	// published is set once Publish committed: from then on the deployment
	// is (or was) production, and it ends completed whatever happens to the
	// job's context.
	published bool
}

// Run runs one attempt. See queue.Runner for what its error means.
func (r *Runner) Run(ctx context.Context, id string, attempt, maxAttempts int) error {
	ctx, release, err := r.lease(ctx, id)
	if err != nil || release == nil {
		return err
	}
	defer release()
	ctx, stopWatch := r.watchCancel(ctx, id)
	defer stopWatch()
	// Loaded whatever the watch says: a deployment cancelled before this
	// run still goes through cleanup and ends cancelled, not retried.
	d, err := r.Store.Deployment(context.WithoutCancel(ctx), id)
	if errors.Is(err, libra.ErrNotFound) {
		return libra.Permanent(err)
	}
	if err != nil {
		return fmt.Errorf("load deployment: %w", err)
	}
	if d.Status.Final() {
		return nil // a repeated job for a finished deployment: nothing to do
	}
	if d.Manifest != "" {
		return r.completePublished(ctx, d)
	}
	// State must still be written after the job's context ends (deadline or
	// shutdown), so those writes use a context that outlives it (and still
	// carries the lease).
	bg := context.WithoutCancel(ctx)
	ru := &run{r: r, d: d, workDir: filepath.Join(r.WorkRoot, d.ID)}
	ru.logs = newLogBuffer(bg, r.Store, d.ID, r.Logger)
	ru.logs.Redact(r.Secrets...)
	defer ru.logs.Close(bg)

	now := libra.Now()
	d.Status = libra.StatusInProgress
	d.Attempt = attempt
	d.Error = ""
	if d.StartedAt == nil {
		d.StartedAt = &now
		metrics.PickedUp(now.Sub(d.CreatedAt))
	}
	if attempt > 1 {
		ru.logs.Add(libra.StepValidate, "info", fmt.Sprintf("attempt %d of %d", attempt, maxAttempts))
	}

	var failed error
	var failedStep libra.Step
	for _, s := range []struct {
		step libra.Step
		fn   func(context.Context) error
	}{
		{libra.StepValidate, ru.validate},
		{libra.StepSync, ru.sync},
		{libra.StepSandbox, ru.prepareSandbox},
		{libra.StepBuild, ru.build},
		{libra.StepDeploy, ru.deploy},
	} {
		if err := ru.do(ctx, s.step, s.fn); err != nil {
			failed, failedStep = err, s.step
			break
		}
	}
	ru.runCleanup(bg, ctx)
	if leaseLost(ctx, failed) {
		// Another node runs the deployment now: nothing more is written.
		return fmt.Errorf("deployment %s stopped on this node: %w", d.ID, libra.ErrLeaseLost)
	}
	err = ru.conclude(bg, ctx, failed, failedStep, attempt, maxAttempts)
	if d.Status.Final() {
		metrics.DeploymentFinished(string(d.Status))
	}
	return err
}

// runCleanup runs cleanup whatever happened, on a context of its own: a
// deployment past its deadline still has a directory and a sandbox to
// remove, and so does one whose lease was lost, although its state may no
// longer be written.
func (ru *run) runCleanup(bg, ctx context.Context) {
	cctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	if err := ru.do(cctx, libra.StepCleanup, ru.cleanup); err != nil {
		ru.fail(libra.StepCleanup, userMessage(err, libra.StepCleanup))
		if leaseLost(ctx, err) {
			_ = ru.cleanup(cctx) // local only: the sandbox and the directory are this node's
		}
	}
}

// completePublished completes a deployment that an earlier attempt
// published (Publish committed) but did not live to mark completed: a node
// killed between the two. Running the steps again would publish it twice;
// what was left (cleanup) belonged to the dead node.
func (r *Runner) completePublished(ctx context.Context, d *libra.Deployment) error {
	now := libra.Now()
	for _, step := range []libra.Step{libra.StepDeploy, libra.StepCleanup} {
		d.Steps[step] = libra.StepState{Status: libra.StepCompleted, Timestamp: &now}
	}
	d.Status, d.CurrentStep, d.Progress, d.Error, d.FinishedAt = libra.StatusCompleted, "", 100, "", &now
	if d.StartedAt == nil {
		d.StartedAt = &now
	}
	line := libra.LogEntry{Time: now, Step: libra.StepCleanup, Level: "info",
		Message: "deployment completed: an earlier attempt had published it before its node stopped"}
	if err := r.Store.UpdateDeployment(ctx, d, []libra.LogEntry{line}); err != nil {
		return fmt.Errorf("save deployment state: %w", err)
	}
	metrics.DeploymentFinished(string(d.Status))
	return nil
}

// lease takes the deployment's lease when the runner uses leases. A nil
// release with a nil error means there is nothing to run: the deployment is
// final. ErrLeaseHeld goes back to the queue, which tries again later.
func (r *Runner) lease(ctx context.Context, id string) (context.Context, func(), error) {
	if r.Leases == nil {
		return ctx, func() {}, nil
	}
	lctx, release, err := r.Leases.hold(ctx, id)
	if !errors.Is(err, libra.ErrNotFound) {
		return lctx, release, err
	}
	if _, err := r.Store.Deployment(ctx, id); errors.Is(err, libra.ErrNotFound) {
		return nil, nil, libra.Permanent(err)
	}
	return nil, nil, nil // final: a repeated job for a finished deployment
}

// finish decides the deployment's state after an attempt and what the queue
// should do with its job.
func (ru *run) finish(bg, ctx context.Context, failed error, step libra.Step, attempt, maxAttempts int) error {
	d := ru.d
	now := libra.Now()
	deadline := errors.Is(ctx.Err(), context.DeadlineExceeded)
	interrupted := !deadline && ctx.Err() != nil
	switch {
	case failed == nil:
		d.Status = libra.StatusCompleted
		d.CurrentStep = ""
		d.FinishedAt = &now
		d.Progress = 100
		ru.logs.Add(libra.StepCleanup, "info", fmt.Sprintf("deployment completed: %d files, %d bytes, %s", ru.files, ru.bytes, now.Sub(*d.StartedAt).Round(time.Millisecond)))
		return ru.save(bg)

	case interrupted:
		// The service is stopping: the step did not fail, it was cut off.
		d.Steps[step] = libra.StepState{Status: libra.StepPending, Timestamp: &now, Error: "interrupted by a service shutdown; it will run again"}
		d.Status = libra.StatusQueued
		ru.logs.Add(step, "warn", "interrupted by a service shutdown; the deployment goes back to the queue")
		if err := ru.save(bg); err != nil {
			return err
		}
		return libra.ErrInterrupted

	case deadline:
		msg := fmt.Sprintf("the deployment exceeded its deadline of %s (MAX_DEPLOYMENT_TIMEOUT) during the %s step", ru.r.Timeout, step)
		ru.failDeployment(step, msg)
		if err := ru.save(bg); err != nil {
			return err
		}
		return libra.Permanent(errors.New(msg))

	case libra.IsPermanent(failed):
		ru.failDeployment(step, userMessage(failed, step))
		if err := ru.save(bg); err != nil {
			return err
		}
		return failed

	case attempt >= maxAttempts:
		// A platform fault that outlived every retry: the user is not at
		// fault, so the quota comes back (before the final state is saved,
		// so a client that sees "failed" sees the quota back too; refunding
		// twice is impossible); the job is dead-lettered.
		if err := ru.r.Store.RefundQuota(bg, d.ID); err != nil {
			return fmt.Errorf("refund quota: %w", err)
		}
		ru.failDeployment(step, userMessage(failed, step)+fmt.Sprintf(" (after %d attempts)", attempt))
		ru.logs.Add(step, "info", "quota given back: the failure was the platform's")
		ru.logs.Add(step, "error", fmt.Sprintf("attempts used up: the job goes to the dead-letter queue %q (libra-deploy dlq list; dlq retry %s)",
			ru.r.DeadLetterQueue, d.ID))
		if err := ru.save(bg); err != nil {
			return err
		}
		return failed

	default:
		msg := userMessage(failed, step)
		d.Steps[step] = libra.StepState{Status: libra.StepPending, Timestamp: &now, Error: fmt.Sprintf("attempt %d failed: %s; retrying", attempt, msg)}
		d.Status = libra.StatusQueued
		ru.logs.Add(step, "warn", fmt.Sprintf("attempt %d of %d failed: %s; it will be retried", attempt, maxAttempts, msg))
		if err := ru.save(bg); err != nil {
			return err
		}
		return failed
	}
}

func (ru *run) failDeployment(step libra.Step, msg string) {
	now := libra.Now()
	ru.fail(step, msg)
	ru.d.Status = libra.StatusFailed
	ru.d.Error = msg
	ru.d.FinishedAt = &now
	ru.logs.Add(step, "error", "deployment failed: "+msg)
}

// fail marks one step failed with a message fit for clients.
func (ru *run) fail(step libra.Step, msg string) {
	now := libra.Now()
	ru.d.Steps[step] = libra.StepState{Status: libra.StepFailed, Timestamp: &now, Error: msg}
}

// do runs one step, recording its state before and after. A step's
// completion is saved together with the next step's start (or with the
// final state): SQLite has one writer, and every write a deployment saves
// is one the API can spend accepting others.
func (ru *run) do(ctx context.Context, step libra.Step, fn func(context.Context) error) error {
	d := ru.d
	now := libra.Now()
	d.CurrentStep = step
	d.Steps[step] = libra.StepState{Status: libra.StepInProgress, Timestamp: &now}
	if err := ru.save(ctx); err != nil {
		return err
	}
	var err error
	if ru.r.BeforeStep != nil {
		err = ru.r.BeforeStep(ctx, d, step)
	}
	if err == nil {
		err = fn(ctx)
	}
	if err == nil && ctx.Err() != nil && !ru.published {
		err = ctx.Err()
	}
	if err != nil {
		metrics.StepDone(string(step), libra.Now().Sub(now), true)
		ru.r.Logger.Warn("step failed", "deployment", d.ID, "step", step, "attempt", d.Attempt, "err", err)
		return err
	}
	done := libra.Now()
	metrics.StepDone(string(step), done.Sub(now), false)
	d.Steps[step] = libra.StepState{Status: libra.StepCompleted, Timestamp: &done}
	d.Progress = max(d.Progress, d.Steps.Progress())
	ru.logs.Add(step, "info", fmt.Sprintf("%s completed in %s", step, done.Sub(now).Round(time.Millisecond)))
	return nil
}

// save writes the deployment's state with the log lines gathered so far.
func (ru *run) save(ctx context.Context) error {
	if err := ru.r.Store.UpdateDeployment(ctx, ru.d, ru.logs.Take()); err != nil {
		return fmt.Errorf("save deployment state: %w", err)
	}
	return nil
}

// userMessage is what a client may see of err. Errors meant for clients
// (*libra.Error, and permanent errors, which describe the user's own input or
// build) are shown; anything else may hold host paths or internals, so the
// client gets the step's name and the server log gets the detail.
func userMessage(err error, step libra.Step) string {
	var le *libra.Error
	switch {
	case errors.As(err, &le):
		return le.Message
	case libra.IsPermanent(err):
		return err.Error()
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the %s step timed out", step)
	default:
		return fmt.Sprintf("internal error during the %s step", step)
	}
}
