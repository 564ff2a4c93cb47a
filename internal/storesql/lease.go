package storesql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Dialect spells what the two databases say differently in the lease
// queries: the database's clock, as integer microseconds and as a River
// timestamp. Lease times come from the database alone, so that nodes whose
// clocks disagree still agree on when a lease expires.
type Dialect struct {
	NowMicros string
	NowStamp  string
	// LastAttempt is the River client (our NODE_ID) that last fetched
	// job j.
	LastAttempt string
	// Placeholders turns "?" into the dialect's own (PostgreSQL: Rebind).
	Placeholders func(string) string
}

// SQLite's julianday has sub-millisecond precision; datetime('now',
// 'subsec') is the text River's SQLite driver stores.
var SQLiteDialect = Dialect{
	NowMicros:    `CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)`,
	NowStamp:     `datetime('now', 'subsec')`,
	LastAttempt:  `json_extract(j.attempted_by, '$[#-1]')`,
	Placeholders: func(q string) string { return q },
}

// PostgresDialect uses now(), the transaction's start: every row a
// transaction stamps gets the same time.
var PostgresDialect = Dialect{
	NowMicros:    `(extract(epoch FROM now()) * 1000000)::bigint`,
	NowStamp:     `now()`,
	LastAttempt:  `j.attempted_by[array_length(j.attempted_by, 1)]`,
	Placeholders: Rebind,
}

// SQL expands {now} and {stamp} and the placeholders of a lease query.
func (d Dialect) SQL(query string) string {
	return d.Placeholders(strings.NewReplacer("{now}", d.NowMicros, "{stamp}", d.NowStamp, "{attempt}", d.LastAttempt).Replace(query))
}

const (
	Heartbeat = `INSERT INTO nodes (id, started_at, heartbeat_at) VALUES (?, {now}, {now})
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`
	SelectNodes = `SELECT id, {now} - heartbeat_at FROM nodes ORDER BY id`
	// PruneNodes forgets nodes silent for a day: the default NODE_ID is
	// new at each start, so the table would otherwise grow with restarts.
	PruneNodes = `DELETE FROM nodes WHERE heartbeat_at < {now} - 86400000000`

	AcquireLease = `UPDATE deployments SET lease_epoch = lease_epoch + 1, lease_node = ?, lease_expires_at = {now} + ?
		WHERE id = ? AND status IN ('queued', 'in_progress') AND (lease_node = '' OR lease_expires_at < {now})
		RETURNING lease_epoch`
	SelectLeaseHolder = `SELECT status FROM deployments WHERE id = ?`
	RenewLease        = `UPDATE deployments SET lease_expires_at = {now} + ? WHERE id = ? AND lease_epoch = ? AND lease_node = ?`
	ReleaseLease      = `UPDATE deployments SET lease_node = '', lease_expires_at = NULL
		WHERE id = ? AND lease_epoch = ? AND lease_node = ?`
	// GuardLease is the first statement of every write made under a
	// lease. Being an UPDATE, it also locks the row in PostgreSQL, so a
	// reaper taking the lease waits for the guarded transaction to commit,
	// and a guarded write after the reaper's commit finds no row.
	GuardLease = `UPDATE deployments SET lease_epoch = lease_epoch WHERE id = ? AND lease_epoch = ? AND lease_node = ?`

	ExpiredLeases = `SELECT id, lease_node, lease_epoch FROM deployments
		WHERE lease_node != '' AND lease_expires_at < {now} AND status IN ('queued', 'in_progress')
		ORDER BY lease_expires_at LIMIT ?`
	// FenceExpired moves the epoch on only if the lease is still the
	// expired one a scan found: two reapers racing take it back once.
	FenceExpired = `UPDATE deployments SET lease_node = '', lease_expires_at = NULL, lease_epoch = lease_epoch + 1,
		reclaims = reclaims + 1
		WHERE id = ? AND lease_epoch = ? AND lease_node = ? AND lease_expires_at < {now}
		  AND status IN ('queued', 'in_progress')
		RETURNING lease_epoch, reclaims, job_id, org_id, quota_month, quota_refunded`
	// UnleasedJobs finds deployments whose job a node fetched (River marks
	// it running at once) but died before its worker took the lease: no
	// lease expires for them, so they are found by their node's heartbeat,
	// older than the second parameter (microseconds), or missing.
	UnleasedJobs = `SELECT d.id, coalesce({attempt}, ''), d.lease_epoch FROM deployments d JOIN river_job j ON j.id = d.job_id
		WHERE d.status IN ('queued', 'in_progress') AND d.lease_node = '' AND j.state = 'running'
		  AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = {attempt} AND n.heartbeat_at > {now} - ?)
		LIMIT ?`
	FenceUnleased = `UPDATE deployments SET lease_epoch = lease_epoch + 1, reclaims = reclaims + 1
		WHERE id = ? AND lease_epoch = ? AND lease_node = '' AND status IN ('queued', 'in_progress')
		RETURNING lease_epoch, reclaims, job_id, org_id, quota_month, quota_refunded`
	// EndJob finishes a deployment's old queue job so that River never
	// runs it again; a worker still holding it (paused, not dead) finds it
	// finalized and River's completion of it changes nothing.
	EndJob = `UPDATE river_job SET state = ?, finalized_at = {stamp}
		WHERE id = ? AND state NOT IN ('completed', 'cancelled', 'discarded')`
	Redispatch = `UPDATE deployments SET status = 'queued', job_id = ? WHERE id = ?`
	// KeepPlace gives the new job the old one's place in line: River
	// takes jobs by scheduled time, and a dead node's deployments were
	// accepted before the backlog that fills the queue now.
	KeepPlace = `UPDATE river_job SET scheduled_at = (SELECT o.scheduled_at FROM river_job o WHERE o.id = ?) WHERE id = ?
		AND EXISTS (SELECT 1 FROM river_job o WHERE o.id = ?)`
	DeadLetter = `UPDATE deployments SET status = 'failed', error = ?, finished_at = ?, quota_refunded = true WHERE id = ?`
	RefundOne  = `UPDATE quota_usage SET used = used - 1 WHERE org_id = ? AND month = ? AND used > 0`
	InsertLog  = `INSERT INTO deployment_logs (deployment_id, ts, step, level, message) VALUES (?, ?, ?, ?, ?)`
)

// Tx is a transaction of either store, with the dialect's spelling applied
// to every query it runs.
type Tx interface {
	Exec(ctx context.Context, query string, args ...any) (rows int64, err error)
	QueryRow(ctx context.Context, query string, args ...any) Scanner
	// NoRows reports whether err says a query returned no row.
	NoRows(err error) bool
}

// EnqueueOne enqueues one deployment's job inside the transaction.
type EnqueueOne func(ctx context.Context, tx Tx, deploymentID string) (jobID int64, err error)

// Guard checks, inside tx, that ctx's lease on id (if ctx carries one) is
// still the deployment's; ErrLeaseLost otherwise.
func Guard(ctx context.Context, tx Tx, id string) error {
	l, ok := libra.LeaseFrom(ctx, id)
	if !ok {
		return nil
	}
	n, err := tx.Exec(ctx, GuardLease, id, l.Epoch, l.Node)
	if err != nil {
		return fmt.Errorf("check lease: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("deployment %s, epoch %d on %s: %w", id, l.Epoch, l.Node, libra.ErrLeaseLost)
	}
	return nil
}

// Acquire takes a lease inside tx; see libra.LeaseStore.AcquireLease.
func Acquire(ctx context.Context, tx Tx, id, node string, ttl time.Duration) (libra.Lease, error) {
	l := libra.Lease{DeploymentID: id, Node: node}
	err := tx.QueryRow(ctx, AcquireLease, node, ttl.Microseconds(), id).Scan(&l.Epoch)
	if err == nil {
		return l, nil
	}
	if !tx.NoRows(err) {
		return l, fmt.Errorf("acquire lease: %w", err)
	}
	var status string
	err = tx.QueryRow(ctx, SelectLeaseHolder, id).Scan(&status)
	if tx.NoRows(err) || err == nil && libra.Status(status).Final() {
		return l, fmt.Errorf("deployment %q is final or gone: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("select deployment: %w", err)
	}
	return l, fmt.Errorf("deployment %s: %w", id, libra.ErrLeaseHeld)
}

// Renew extends a lease inside tx; see libra.LeaseStore.RenewLease.
func Renew(ctx context.Context, tx Tx, l libra.Lease, ttl time.Duration) error {
	n, err := tx.Exec(ctx, RenewLease, ttl.Microseconds(), l.DeploymentID, l.Epoch, l.Node)
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("deployment %s, epoch %d: %w", l.DeploymentID, l.Epoch, libra.ErrLeaseLost)
	}
	return nil
}

// ExpiredLease is what a reaper's scan found.
type ExpiredLease struct {
	ID    string
	Node  string
	Epoch int64
	// Unleased: found by UnleasedJobs, not ExpiredLeases.
	Unleased bool
}

// ScanUnleased reads a row of UnleasedJobs.
func ScanUnleased(row Scanner) (ExpiredLease, error) {
	e, err := ScanExpired(row)
	e.Unleased = true
	return e, err
}

// Reap takes back one expired lease inside tx: ok is false when another
// reaper (or the holder's renewal) got there first. See
// libra.LeaseStore.ReapLeases.
func Reap(ctx context.Context, tx Tx, e ExpiredLease, maxReclaims int, enqueue EnqueueOne) (libra.Reclaimed, bool, error) {
	r := libra.Reclaimed{DeploymentID: e.ID, FromNode: e.Node}
	var job sql.NullInt64
	var org, month string
	var refunded bool
	query, args := FenceExpired, []any{e.ID, e.Epoch, e.Node}
	if e.Unleased {
		query, args = FenceUnleased, []any{e.ID, e.Epoch}
	}
	err := tx.QueryRow(ctx, query, args...).Scan(&r.Epoch, &r.Reclaims, &job, &org, &month, &refunded)
	if tx.NoRows(err) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("fence %s: %w", e.ID, err)
	}
	if r.Cancelled, err = reapCancelled(ctx, tx, e.ID); r.Cancelled || err != nil {
		return r, true, err
	}
	r.DeadLettered = r.Reclaims > maxReclaims
	if r.DeadLettered {
		return r, true, deadLetter(ctx, tx, r, job, org, month, refunded)
	}
	return r, true, redispatch(ctx, tx, r, job, enqueue)
}

func redispatch(ctx context.Context, tx Tx, r libra.Reclaimed, oldJob sql.NullInt64, enqueue EnqueueOne) error {
	if err := endJob(ctx, tx, oldJob, "cancelled"); err != nil {
		return err
	}
	jobID, err := enqueue(ctx, tx, r.DeploymentID)
	if err != nil {
		return fmt.Errorf("enqueue %s again: %w", r.DeploymentID, err)
	}
	if _, err := tx.Exec(ctx, Redispatch, jobID, r.DeploymentID); err != nil {
		return fmt.Errorf("record new job of %s: %w", r.DeploymentID, err)
	}
	if oldJob.Valid {
		if _, err := tx.Exec(ctx, KeepPlace, oldJob.Int64, jobID, oldJob.Int64); err != nil {
			return fmt.Errorf("keep the place of %s: %w", r.DeploymentID, err)
		}
	}
	return reapLog(ctx, tx, r.DeploymentID, "warn", fmt.Sprintf(
		"node %s stopped renewing its lease; the deployment is dispatched again (epoch %d, reclaim %d)", r.FromNode, r.Epoch, r.Reclaims))
}

// deadLetter fails a deployment that kept losing its node: the failure is
// the platform's, so its quota comes back (once), and its job is discarded,
// which is the dead-letter queue (`dlq list`, `dlq retry`).
func deadLetter(ctx context.Context, tx Tx, r libra.Reclaimed, oldJob sql.NullInt64, org, month string, refunded bool) error {
	if err := endJob(ctx, tx, oldJob, "discarded"); err != nil {
		return err
	}
	msg := fmt.Sprintf("the nodes running this deployment stopped answering %d times; it goes to the dead-letter queue", r.Reclaims)
	if _, err := tx.Exec(ctx, DeadLetter, msg, Micros(libra.Now()), r.DeploymentID); err != nil {
		return fmt.Errorf("dead-letter %s: %w", r.DeploymentID, err)
	}
	if !refunded {
		if _, err := tx.Exec(ctx, RefundOne, org, month); err != nil {
			return fmt.Errorf("refund quota of %s: %w", r.DeploymentID, err)
		}
	}
	if err := reapLog(ctx, tx, r.DeploymentID, "error", "deployment failed: "+msg+"; quota given back"); err != nil {
		return err
	}
	return announceFinal(ctx, tx, r.DeploymentID)
}

func endJob(ctx context.Context, tx Tx, job sql.NullInt64, state string) error {
	if !job.Valid {
		return nil
	}
	if _, err := tx.Exec(ctx, EndJob, state, job.Int64); err != nil {
		return fmt.Errorf("end job %d: %w", job.Int64, err)
	}
	return nil
}

func reapLog(ctx context.Context, tx Tx, id, level, msg string) error {
	line := libra.LogEntry{Time: libra.Now(), Step: libra.StepValidate, Level: level, Message: msg}
	if _, err := tx.Exec(ctx, InsertLog, id, Micros(line.Time), string(line.Step), level, msg); err != nil {
		return fmt.Errorf("log reclaim of %s: %w", id, err)
	}
	if el, ok := tx.(EventLogger); ok {
		return el.LogEvents(ctx, id, []libra.LogEntry{line})
	}
	return nil
}

// ScanExpired reads a row of ExpiredLeases.
func ScanExpired(row Scanner) (ExpiredLease, error) {
	var e ExpiredLease
	err := row.Scan(&e.ID, &e.Node, &e.Epoch)
	return e, err
}

// ErrNoEnqueue is returned when a store's Enqueue was never set.
var ErrNoEnqueue = errors.New("the store's Enqueue is not set")

// ReapQuery runs one of the reaper's scans (ExpiredLeases, UnleasedJobs).
type ReapQuery func(query string, scan func(Scanner) (ExpiredLease, error), args ...any) ([]ExpiredLease, error)

// ReapAll is libra.LeaseStore.ReapLeases for either store: it takes back
// every expired lease, then every job a dead node fetched but never
// leased, one transaction each (inTx), so that one that fails does not
// hold back the others. Every node runs it; FenceExpired's condition makes
// two nodes reaping one lease take it back once.
func ReapAll(ctx context.Context, query ReapQuery, inTx func(func(Tx) error) error, enqueue EnqueueOne,
	deadAfter time.Duration, maxReclaims, limit int) ([]libra.Reclaimed, error) {
	expired, err := query(ExpiredLeases, ScanExpired, limit)
	if err != nil {
		return nil, err
	}
	unleased, err := query(UnleasedJobs, ScanUnleased, deadAfter.Microseconds(), limit)
	if err != nil {
		return nil, err
	}
	var out []libra.Reclaimed
	for _, e := range append(expired, unleased...) {
		err := inTx(func(tx Tx) error {
			r, ok, err := Reap(ctx, tx, e, maxReclaims, enqueue)
			if ok && err == nil {
				out = append(out, r)
			}
			return err
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
