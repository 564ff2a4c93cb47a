// Package queue runs deployments as River jobs.
//
// River keeps its jobs in the same database as the deployments, which is what
// lets the store write a deployment and its job in one transaction. This
// package owns everything River-specific: the job's shape, the worker that
// hands a job to the workflow, how errors become retries, cancellations or
// dead letters, and the dead-letter listing.
//
// Queue is generic over the driver's transaction type so that the same code
// runs on SQLite (*sql.Tx) and PostgreSQL (pgx.Tx).
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	libra "github.com/libra-deploy/libra-deploy"
)

// DeploymentArgs is a deployment job's payload: only the id. Everything else
// is in the deployment row, written in the same transaction.
type DeploymentArgs struct {
	DeploymentID string `json:"deployment_id"`
}

// Kind is River's name for this job type.
func (DeploymentArgs) Kind() string { return "deployment" }

// Runner runs one attempt at a deployment. Its error decides what happens to
// the job: nil completes it, a libra.Permanent error cancels it (no retry),
// libra.ErrInterrupted hands it back unchanged, anything else is retried
// until the attempts are used up, and then the job is dead-lettered.
type Runner interface {
	Run(ctx context.Context, deploymentID string, attempt, maxAttempts int) error
}

// Config configures a Queue.
type Config struct {
	// Name is the River queue (DEPLOYMENT_QUEUE_NAME).
	Name string
	// ClientID is River's client id, which River records in each job it
	// fetches (attempted_by): the node's NODE_ID, so that the lease reaper
	// can tell a job fetched by a node that died before it took the
	// deployment's lease. Empty: River's own random id.
	ClientID string
	// MaxWorkers caps concurrent deployments on this node (MAX_CONCURRENT_DEPLOYMENTS).
	MaxWorkers int
	// MaxAttempts is retries + 1.
	MaxAttempts int
	// JobTimeout is the deadline of one attempt (MAX_DEPLOYMENT_TIMEOUT).
	JobTimeout time.Duration
	// RetryBase is the first retry's delay; each later one doubles it.
	RetryBase time.Duration
	// FetchPollInterval and FetchCooldown: River's defaults (1 s, 100 ms)
	// delay pickup by up to a second; deployments want to start at once.
	// SQLite has no LISTEN/NOTIFY, so pickup waits for the next poll: 30 ms
	// gave a pickup p50 of 18 ms here, for about 4 % of one core when idle.
	FetchPollInterval time.Duration
	FetchCooldown     time.Duration
	Logger            *slog.Logger
	// Extra are further job kinds worked beside deployments, each in its
	// own River queue (webhook deliveries). Registered only with a runner.
	Extra []ExtraQueue
}

// ExtraQueue is a River queue of another job kind on the same client.
type ExtraQueue struct {
	Name       string
	MaxWorkers int
	// Register adds the queue's workers.
	Register func(*river.Workers) error
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = "deployment-queue"
	}
	if c.MaxWorkers <= 0 {
		c.MaxWorkers = 5
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 10 * time.Minute
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 2 * time.Second
	}
	if c.FetchPollInterval <= 0 {
		c.FetchPollInterval = 30 * time.Millisecond
	}
	if c.FetchCooldown <= 0 {
		c.FetchCooldown = 5 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Queue is the deployment queue on one database.
type Queue[TTx any] struct {
	client  *river.Client[TTx]
	cfg     Config
	started atomic.Bool
}

// Migrate creates or updates River's tables.
func Migrate[TTx any](ctx context.Context, driver riverdriver.Driver[TTx]) error {
	m, err := rivermigrate.New(driver, nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}
	return nil
}

// New returns a Queue. With a nil runner it only inserts and manages jobs,
// which is what admin commands need while `serve` does the work.
func New[TTx any](driver riverdriver.Driver[TTx], runner Runner, cfg Config) (*Queue[TTx], error) {
	cfg.defaults()
	rc := &river.Config{
		ID:                cfg.ClientID,
		Logger:            cfg.Logger.With("component", "river"),
		MaxAttempts:       cfg.MaxAttempts,
		JobTimeout:        cfg.JobTimeout,
		FetchPollInterval: cfg.FetchPollInterval,
		FetchCooldown:     cfg.FetchCooldown,
		RetryPolicy:       &doubling{base: cfg.RetryBase},
		// Jobs left running by a process that died are handed back at
		// start-up by the store (see sqlite.DB.RescueOrphans); River's own
		// rescuer is the backstop and must wait past the deadline so a slow
		// job is never run twice at once.
		RescueStuckJobsAfter: cfg.JobTimeout + time.Minute,
	}
	if runner != nil {
		workers := river.NewWorkers()
		if err := river.AddWorkerSafely(workers, &worker{runner: runner}); err != nil {
			return nil, fmt.Errorf("add worker: %w", err)
		}
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{cfg.Name: {MaxWorkers: cfg.MaxWorkers}}
		for _, x := range cfg.Extra {
			if err := x.Register(workers); err != nil {
				return nil, fmt.Errorf("add %s worker: %w", x.Name, err)
			}
			// Polled at River's default pace: a webhook may wait a
			// second, and polling each extra queue every 30 ms too
			// doubled the idle CPU on SQLite (7.7 % of a core).
			rc.Queues[x.Name] = river.QueueConfig{MaxWorkers: x.MaxWorkers, FetchPollInterval: max(cfg.FetchPollInterval, time.Second)}
		}
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &Queue[TTx]{client: client, cfg: cfg}, nil
}

// InsertManyTx enqueues deployments inside tx and returns their job ids, in
// order. One call for a batch: River validates and inserts them together.
func (q *Queue[TTx]) InsertManyTx(ctx context.Context, tx TTx, deploymentIDs []string) ([]int64, error) {
	params := make([]river.InsertManyParams, len(deploymentIDs))
	for i, id := range deploymentIDs {
		params[i] = river.InsertManyParams{
			Args:       DeploymentArgs{DeploymentID: id},
			InsertOpts: &river.InsertOpts{Queue: q.cfg.Name, MaxAttempts: q.cfg.MaxAttempts},
		}
	}
	res, err := q.client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("insert jobs: %w", err)
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids, nil
}

// Start starts working jobs.
func (q *Queue[TTx]) Start(ctx context.Context) error {
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	q.started.Store(true)
	return nil
}

// Stop lets running jobs finish until ctx is done, then cancels them; a
// cancelled run hands its job back (libra.ErrInterrupted), so nothing is lost.
func (q *Queue[TTx]) Stop(ctx context.Context) error {
	defer q.started.Store(false)
	err := q.client.Stop(ctx)
	if err == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := q.client.StopAndCancel(cctx); err != nil {
		return fmt.Errorf("stop river: %w", err)
	}
	return nil
}

// Check reports whether the queue client is running; /health uses it.
func (q *Queue[TTx]) Check(ctx context.Context) error {
	if !q.started.Load() {
		return errors.New("queue workers are not running")
	}
	select {
	case <-q.client.Stopped():
		return errors.New("queue workers stopped")
	default:
	}
	return nil
}

// Client exposes the River client, for River UI and admin tools.
func (q *Queue[TTx]) Client() *river.Client[TTx] { return q.client }

// DeadLetter is a deployment whose job used up its attempts.
type DeadLetter struct {
	JobID        int64
	DeploymentID string
	Attempts     int
	FailedAt     time.Time
	LastError    string
}

// DeadLetters lists discarded deployment jobs, newest first. River's
// "discarded" state is the dead-letter queue: the job keeps its arguments and
// every attempt's error, and JobRetry makes it available again.
func (q *Queue[TTx]) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	params := river.NewJobListParams().
		Queues(q.cfg.Name).
		Kinds(DeploymentArgs{}.Kind()).
		States(rivertype.JobStateDiscarded).
		OrderBy(river.JobListOrderByTime, river.SortOrderDesc).
		First(limit)
	res, err := q.client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(res.Jobs))
	for _, j := range res.Jobs {
		dl := DeadLetter{JobID: j.ID, Attempts: j.Attempt}
		if j.FinalizedAt != nil {
			dl.FailedAt = *j.FinalizedAt
		}
		if n := len(j.Errors); n > 0 {
			dl.LastError = j.Errors[n-1].Error
		}
		var args DeploymentArgs
		if err := json.Unmarshal(j.EncodedArgs, &args); err == nil {
			dl.DeploymentID = args.DeploymentID
		}
		out = append(out, dl)
	}
	return out, nil
}

// RetryTx makes a dead-lettered job available again inside tx (River adds
// an attempt, since the job had used them all). Jobs in any other state are
// refused: a cancelled job failed for good reason (bad input, a broken build)
// and would only fail again.
func (q *Queue[TTx]) RetryTx(ctx context.Context, tx TTx, jobID int64) error {
	j, err := q.client.JobGetTx(ctx, tx, jobID)
	if err != nil {
		return fmt.Errorf("get job %d: %w", jobID, err)
	}
	if j.State != rivertype.JobStateDiscarded {
		return libra.Errorf(libra.CodeConflict, "job %d is %s, not dead-lettered", jobID, j.State)
	}
	if _, err := q.client.JobRetryTx(ctx, tx, jobID); err != nil {
		return fmt.Errorf("retry job %d: %w", jobID, err)
	}
	return nil
}

// JobState returns a job's state.
func (q *Queue[TTx]) JobState(ctx context.Context, jobID int64) (rivertype.JobState, error) {
	j, err := q.client.JobGet(ctx, jobID)
	if err != nil {
		return "", fmt.Errorf("get job %d: %w", jobID, err)
	}
	return j.State, nil
}

// doubling waits base, 2*base, 4*base, ... between attempts.
type doubling struct{ base time.Duration }

func (d *doubling) NextRetry(job *rivertype.JobRow) time.Time {
	n := max(job.Attempt-1, 0)
	return time.Now().Add(d.base << min(n, 10))
}

// leaseHeldSnooze is how long a job whose deployment another node runs
// waits before looking again.
const leaseHeldSnooze = 5 * time.Second

type worker struct {
	river.WorkerDefaults[DeploymentArgs]
	runner Runner
}

func (w *worker) Work(ctx context.Context, job *river.Job[DeploymentArgs]) error {
	err := w.runner.Run(ctx, job.Args.DeploymentID, job.Attempt, job.MaxAttempts)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, libra.ErrLeaseHeld):
		// Another node runs it: look again later. If that node dies, the
		// reaper ends this job and enqueues a new one; if it finishes, this
		// job finds the deployment final and completes.
		return river.JobSnooze(leaseHeldSnooze)
	case errors.Is(err, libra.ErrLeaseLost):
		// The reaper already ended this job (or another took it over):
		// cancelling it changes nothing River still runs.
		return river.JobCancel(err)
	case errors.Is(err, libra.ErrInterrupted):
		// Snoozing does not count as an attempt: the next node or the
		// restarted service picks it up at once.
		return river.JobSnooze(0)
	case libra.IsPermanent(err):
		return river.JobCancel(err)
	default:
		return err
	}
}
