package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

var _ libra.Store = (*DB)(nil)

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// CreateProject stores a new project; PROJECT_EXISTS when the id, or its
// host name, is taken.
func (db *DB) CreateProject(ctx context.Context, p libra.Project) error {
	var host sql.NullString
	if h, ok := libra.ProjectHost(p.ID); ok {
		host = sql.NullString{String: h, Valid: true}
	}
	_, err := db.Pool.Exec(ctx, pg(storesql.InsertProject), p.ID, p.OrgID, p.Name, host, storesql.Micros(p.CreatedAt))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
		return libra.Errorf(libra.CodeProjectExists, "project %q already exists", p.ID)
	}
	if err != nil {
		return fmt.Errorf("insert project: %w", err)
	}
	return nil
}

// Project returns a project by id.
func (db *DB) Project(ctx context.Context, id string) (*libra.Project, error) {
	p, err := storesql.ScanProject(db.Pool.QueryRow(ctx, pg(storesql.SelectProject), id))
	if noRows(err) {
		return nil, fmt.Errorf("project %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select project: %w", err)
	}
	return &p, nil
}

// ListProjects returns an org's projects, ordered by id (the column's "C"
// collation makes that byte order).
func (db *DB) ListProjects(ctx context.Context, orgID string) ([]libra.Project, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.SelectProjects), orgID)
	if err != nil {
		return nil, fmt.Errorf("select projects: %w", err)
	}
	out, err := collect(rows, storesql.ScanProject)
	if err != nil {
		return nil, fmt.Errorf("select projects: %w", err)
	}
	return out, nil
}

// collect scans every row with scan and closes rows.
func collect[T any](rows pgx.Rows, scan func(storesql.Scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	return storesql.Collect(rows, scan)
}

// SetQuota sets an org's monthly limit; a negative limit removes it.
func (db *DB) SetQuota(ctx context.Context, orgID string, limit int) error {
	var err error
	if limit < 0 {
		_, err = db.Pool.Exec(ctx, pg(storesql.DeleteQuota), orgID)
	} else {
		_, err = db.Pool.Exec(ctx, `INSERT INTO quotas (org_id, monthly_limit) VALUES ($1, $2)
			ON CONFLICT (org_id) DO UPDATE SET monthly_limit = excluded.monthly_limit`, orgID, limit)
	}
	if err != nil {
		return fmt.Errorf("set quota: %w", err)
	}
	return nil
}

// Quota returns an org's limit (-1 for none) and its use in month.
func (db *DB) Quota(ctx context.Context, orgID, month string) (*libra.Quota, error) {
	q := libra.Quota{OrgID: orgID, Month: month, Limit: -1}
	if err := db.Pool.QueryRow(ctx, pg(storesql.SelectQuota), orgID).Scan(&q.Limit); err != nil && !noRows(err) {
		return nil, fmt.Errorf("select quota: %w", err)
	}
	if err := db.Pool.QueryRow(ctx, pg(storesql.SelectQuotaUsed), orgID, month).Scan(&q.Used); err != nil && !noRows(err) {
		return nil, fmt.Errorf("select quota usage: %w", err)
	}
	return &q, nil
}

// chargeQuota adds one to the org's use this month unless that reaches its
// limit, and reports whether it did. One statement: the upsert locks the
// usage row, so concurrent charges from any number of nodes queue on it and
// each sees the count the previous one left. A limit of 0 refuses even the
// first insert.
const chargeQuota = `INSERT INTO quota_usage AS u (org_id, month, used)
	SELECT $1, $2, 1 WHERE coalesce((SELECT monthly_limit FROM quotas WHERE org_id = $1), 1) >= 1
	ON CONFLICT (org_id, month) DO UPDATE SET used = u.used + 1
	WHERE u.used < coalesce((SELECT monthly_limit FROM quotas WHERE org_id = $1), u.used + 1)
	RETURNING used`

// acceptTimeout bounds the accept transaction, which does not follow the
// caller's context: a client that goes away mid-commit must not leave a
// deployment accepted that it was told failed.
const acceptTimeout = 30 * time.Second

// CreateDeployment charges the quota, inserts the deployment and enqueues its
// job, all in one transaction: either all three happen or none does.
func (db *DB) CreateDeployment(ctx context.Context, d *libra.Deployment) error {
	if db.Enqueue == nil {
		return errors.New("postgres: Enqueue is not set")
	}
	storesql.PrepareDeployment(d)
	steps, input, err := storesql.EncodeDeployment(d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), acceptTimeout)
	defer cancel()
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var used int
		err := tx.QueryRow(ctx, chargeQuota, d.OrgID, d.QuotaMonth).Scan(&used)
		if noRows(err) {
			return db.quotaExceeded(ctx, tx, d)
		}
		if err != nil {
			return fmt.Errorf("charge quota: %w", err)
		}
		jobIDs, err := db.Enqueue(ctx, tx, []string{d.ID})
		if err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		var listeners int
		if err := tx.QueryRow(ctx, insertDeployment, d.ID, d.SiteLabel, d.ProjectID, d.OrgID, d.UserID,
			d.CustomDomain, d.Status, steps, input, jobIDs[0], storesql.Micros(d.CreatedAt), d.QuotaMonth,
			storesql.TargetOf(d), d.Alias).Scan(&listeners); err != nil {
			return fmt.Errorf("insert deployment: %w", err)
		}
		return db.outboxIf(ctx, tx, listeners, storesql.OutboxEvent{Event: libra.EventDeploymentCreated, ProjectID: d.ProjectID,
			DeploymentID: d.ID})
	})
}

// insertDeployment also says whether the project has webhook endpoints, so
// that announcing the deployment costs no statement when it has none.
var insertDeployment = pg(storesql.InsertDeployment) + storesql.ReturningListeners("deployments.project_id")

func (db *DB) quotaExceeded(ctx context.Context, tx pgx.Tx, d *libra.Deployment) error {
	var limit int
	if err := tx.QueryRow(ctx, pg(storesql.SelectQuota), d.OrgID).Scan(&limit); err != nil {
		return fmt.Errorf("select quota: %w", err)
	}
	return storesql.QuotaExceeded(d.OrgID, limit, d.QuotaMonth)
}

// Deployment returns a deployment by id.
func (db *DB) Deployment(ctx context.Context, id string) (*libra.Deployment, error) {
	d, err := storesql.ScanDeployment(db.Pool.QueryRow(ctx, pg(storesql.SelectDeployment), id))
	if noRows(err) {
		return nil, fmt.Errorf("deployment %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select deployment: %w", err)
	}
	return d, nil
}

const updateDeployment = `UPDATE deployments SET status = $1, current_step = $2, progress = greatest(progress, $3),
	steps = $4, error = $5, url = $6, attempt = $7, started_at = $8, finished_at = $9, event_seq = $10 WHERE id = $11`

// UpdateDeployment saves a deployment's mutable state and appends logs,
// with the events the change makes (storesql.UpdateEvents).
func (db *DB) UpdateDeployment(ctx context.Context, d *libra.Deployment, logs []libra.LogEntry) error {
	steps, err := storesql.EncodeSteps(d.Steps)
	if err != nil {
		return err
	}
	var events []storesql.EventRow
	err = db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := guard(ctx, tx, d.ID); err != nil {
			return err
		}
		var seq int64
		events, seq, err = updateEvents(ctx, tx, d, logs)
		if err != nil {
			return err
		}
		args := []any{d.Status, d.CurrentStep, d.Progress, steps, d.Error, d.URL, d.Attempt,
			storesql.OptMicros(d.StartedAt), storesql.OptMicros(d.FinishedAt), seq, d.ID}
		ev := libra.FinalEvent(d.Status)
		listeners := 0
		if ev == "" {
			_, err = tx.Exec(ctx, updateDeployment, args...)
		} else {
			err = tx.QueryRow(ctx, updateDeployment+storesql.ReturningListeners("deployments.project_id"), args...).Scan(&listeners)
			if noRows(err) {
				err = nil // no such deployment: nothing written, as with Exec
			}
		}
		if err != nil {
			return fmt.Errorf("update deployment %s: %w", d.ID, err)
		}
		if err := appendLogs(ctx, tx, d.ID, logs); err != nil {
			return err
		}
		if err := db.outboxIf(ctx, tx, listeners, storesql.OutboxEvent{Event: ev, ProjectID: d.ProjectID, DeploymentID: d.ID,
			Dedupe: storesql.FinalDedupe(ev, d.ID, d.Attempt)}); err != nil {
			return err
		}
		return insertEvents(ctx, tx, d.ID, events)
	})
	db.wake(err, d.ID, events)
	return err
}

// selectPrior locks the row until the commit, so that a concurrent
// AppendLogs numbers its events after these (or before, having committed),
// and queues the NOTIFY that wakes other nodes' followers on commit; in one
// round trip. pg_notify returns void, which casts to the empty text.
// The counter is deployments.event_seq here (migrations/0007); SQLite reads
// max(seq) instead (sqlite/events.go).
const selectPrior = `SELECT status, current_step, progress, steps, event_seq, pg_notify('` + eventsChannel + `', id)::text
	FROM deployments WHERE id = $1 FOR UPDATE`

// updateEvents compares d with the stored row. An unknown deployment makes
// no events (and the update changes nothing).
func updateEvents(ctx context.Context, tx pgx.Tx, d *libra.Deployment, logs []libra.LogEntry) ([]storesql.EventRow, int64, error) {
	prior, err := storesql.ScanPrior(notified{tx.QueryRow(ctx, selectPrior, d.ID)})
	if noRows(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("select deployment %s: %w", d.ID, err)
	}
	events, err := storesql.UpdateEvents(prior, d, logs)
	if err != nil {
		return nil, 0, err
	}
	return events, prior.Seq + int64(len(events)), nil
}

// notified scans a row whose last column is pg_notify's result, dropping it.
type notified struct{ row pgx.Row }

func (n notified) Scan(dest ...any) error {
	var discard string
	return n.row.Scan(append(dest, &discard)...)
}

// insertEvents is one INSERT of arrays, not COPY: a node stopped mid-COPY
// (SIGSTOP, a frozen VM) keeps its session "active", holding the
// deployment's row lock past idle_in_transaction_session_timeout, and the
// other nodes' reaper would wait on that lock for ever. Stopped between
// statements, the session is idle in its transaction and PostgreSQL ends it.
func insertEvents(ctx context.Context, tx pgx.Tx, id string, events []storesql.EventRow) error {
	if len(events) == 0 {
		return nil
	}
	seqs, types, data := make([]int64, len(events)), make([]string, len(events)), make([]string, len(events))
	for i, e := range events {
		seqs[i], types[i], data[i] = e.Seq, e.Type, string(e.Data)
	}
	_, err := tx.Exec(ctx, `INSERT INTO deployment_events (deployment_id, seq, type, data)
		SELECT $1, s, t, d FROM unnest($2::bigint[], $3::text[], $4::text[]) AS e(s, t, d)`, id, seqs, types, data)
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	return nil
}

// wake tells this node's followers of committed events at once, without
// waiting for the NOTIFY's round trip.
func (db *DB) wake(err error, id string, events []storesql.EventRow) {
	if err == nil && len(events) > 0 {
		db.events.Notify(id)
	}
}

// RefundQuota gives back the quota a deployment used, at most once.
func (db *DB) RefundQuota(ctx context.Context, id string) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := guard(ctx, tx, id); err != nil {
			return err
		}
		var org, month string
		err := tx.QueryRow(ctx, `UPDATE deployments SET quota_refunded = true WHERE id = $1 AND NOT quota_refunded
			RETURNING org_id, quota_month`, id).Scan(&org, &month)
		if noRows(err) {
			return nil // already refunded, or no such deployment
		}
		if err != nil {
			return fmt.Errorf("mark refunded: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE quota_usage SET used = greatest(used - 1, 0) WHERE org_id = $1 AND month = $2`,
			org, month); err != nil {
			return fmt.Errorf("refund quota: %w", err)
		}
		return nil
	})
}

// Publish records where a deployment's files are, moves its project's alias
// to it unless a newer deployment is already current, and attaches its custom
// domain, in one transaction that also announces the flip to every node. Two
// nodes publishing at once queue on the project row, and the second
// re-checks the newest-wins condition against the first's result.
func (db *DB) Publish(ctx context.Context, id, manifest, url string) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := guard(ctx, tx, id); err != nil {
			return err
		}
		pub, err := storesql.ScanPublished(tx.QueryRow(ctx, pg(storesql.PublishManifest), manifest, url, id))
		if noRows(err) {
			return storesql.PublishRefused(ctx, leaseTx{tx: tx}, id)
		}
		if err != nil {
			return fmt.Errorf("record manifest: %w", err)
		}
		// Its own host (and its stable alias, which it now serves as the
		// alias's newest) start serving whether or not production moves.
		changes := []libra.SiteChange{{SiteLabel: pub.SiteLabel}}
		if label := pub.AliasLabel(); label != "" {
			changes = append(changes, libra.SiteChange{SiteLabel: label})
		}
		if pub.MovesProduction() {
			moved, err := db.goLive(ctx, tx, id, pub)
			if err != nil {
				return err
			}
			if moved {
				changes = append(changes, projectFlip(pub.ProjectID))
			}
		}
		return flipped(ctx, tx, changes...)
	})
}

// goLive moves the project's production alias to a production deployment
// that publishes (newest wins), tells the project's webhooks when it moved,
// and attaches its custom domain; moved says whether the alias moved.
func (db *DB) goLive(ctx context.Context, tx pgx.Tx, id string, pub storesql.Published) (moved bool, err error) {
	// No row back: a newer deployment is production already.
	var listeners int
	err = tx.QueryRow(ctx, moveAlias, id, pub.Seq, pub.ProjectID, pub.Seq).Scan(&listeners)
	if err != nil && !noRows(err) {
		return false, fmt.Errorf("move alias: %w", err)
	}
	moved = err == nil
	if moved {
		if err := db.outboxIf(ctx, tx, listeners, storesql.OutboxEvent{Event: libra.EventDeploymentPromoted,
			ProjectID: pub.ProjectID, DeploymentID: id}); err != nil {
			return false, err
		}
	}
	if pub.Domain != "" {
		if err := attachDomain(ctx, tx, pub.ProjectID, pub.Domain); err != nil {
			return false, err
		}
	}
	return moved, nil
}

// moveAlias is storesql.MoveAlias returning whether the project has webhook
// endpoints (see storesql.ReturningListeners).
var moveAlias = pg(storesql.MoveAlias) + storesql.ReturningListeners("projects.id")

func attachDomain(ctx context.Context, tx pgx.Tx, project, domain string) error {
	var owner string
	err := tx.QueryRow(ctx, `INSERT INTO domains (domain, project_id, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (domain) DO UPDATE SET domain = excluded.domain RETURNING project_id`,
		domain, project, storesql.Micros(libra.Now())).Scan(&owner)
	if err != nil {
		return fmt.Errorf("attach domain: %w", err)
	}
	if owner != project {
		return libra.Permanent(libra.Errorf(libra.CodeDomainTaken, "domain %s belongs to another project", domain))
	}
	return nil
}

// DomainOwner returns the project a custom domain is attached to, or "".
func (db *DB) DomainOwner(ctx context.Context, domain string) (string, error) {
	var owner string
	err := db.Pool.QueryRow(ctx, pg(storesql.DomainOwner), domain).Scan(&owner)
	if noRows(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select domain: %w", err)
	}
	return owner, nil
}

// AppendLogs writes a batch of log lines in one transaction, with one
// "log" event each.
func (db *DB) AppendLogs(ctx context.Context, id string, entries []libra.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var events []storesql.EventRow
	err := db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := guard(ctx, tx, id); err != nil {
			return err
		}
		if err := appendLogs(ctx, tx, id, entries); err != nil {
			return err
		}
		var err error
		if events, err = logEvents(ctx, tx, id, entries); err != nil {
			return err
		}
		return insertEvents(ctx, tx, id, events)
	})
	db.wake(err, id, events)
	return err
}

// bumpEventSeq reserves seqs for a batch of log lines and returns the last,
// queuing the followers' NOTIFY. The UPDATE holds the row's lock until the
// commit, so seqs commit in order; and, unlike a max(seq) read, it sees
// the value a concurrent writer it waited for committed (READ COMMITTED
// re-reads the row it locks, not a subquery's snapshot). The row's large
// columns are TOASTed, so the update rewrites little.
const bumpEventSeq = `UPDATE deployments SET event_seq = event_seq + $1 WHERE id = $2
	RETURNING event_seq, pg_notify('` + eventsChannel + `', id)::text`

// logEvents reserves one seq per line; none for an unknown deployment.
func logEvents(ctx context.Context, tx pgx.Tx, id string, entries []libra.LogEntry) ([]storesql.EventRow, error) {
	var last int64
	err := notified{tx.QueryRow(ctx, bumpEventSeq, len(entries), id)}.Scan(&last)
	if noRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reserve event seqs: %w", err)
	}
	return storesql.LogEvents(last-int64(len(entries)), entries)
}

// appendLogs inserts any number of lines in one statement, in their order
// (WITH ORDINALITY ... ORDER BY: the identity column follows it). Not COPY,
// for the reason insertEvents gives.
func appendLogs(ctx context.Context, tx pgx.Tx, id string, entries []libra.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	n := len(entries)
	ts, steps, levels, msgs := make([]int64, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range entries {
		ts[i], steps[i], levels[i], msgs[i] = storesql.Micros(e.Time), string(e.Step), e.Level, e.Message
	}
	_, err := tx.Exec(ctx, `INSERT INTO deployment_logs (deployment_id, ts, step, level, message)
		SELECT $1, t, s, l, m FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS e(t, s, l, m, n)
		ORDER BY n`, id, ts, steps, levels, msgs)
	if err != nil {
		return fmt.Errorf("insert logs: %w", err)
	}
	return nil
}

// Logs returns the last limit log lines of a deployment, oldest first.
func (db *DB) Logs(ctx context.Context, id string, limit int) ([]libra.LogEntry, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.SelectLogs), id, limit)
	if err != nil {
		return nil, fmt.Errorf("select logs: %w", err)
	}
	out, err := collect(rows, storesql.ScanLog)
	if err != nil {
		return nil, fmt.Errorf("select logs: %w", err)
	}
	return out, nil
}

// SiteByLabel returns what a deployment's own host or, failing that, the
// stable alias of that label serves (storesql.SiteOfLabel).
func (db *DB) SiteByLabel(ctx context.Context, label string) (string, string, error) {
	return storesql.SiteOfLabel(ctx, db.site, label)
}

// SiteByProject returns what a project's production alias serves.
func (db *DB) SiteByProject(ctx context.Context, projectHost string) (string, string, error) {
	return db.site(ctx, storesql.SiteByProject, projectHost)
}

// SiteByDomain returns what a verified custom domain serves.
func (db *DB) SiteByDomain(ctx context.Context, domain string) (string, string, error) {
	return db.site(ctx, storesql.SiteByDomain, domain)
}

func (db *DB) site(ctx context.Context, query string, args ...any) (string, string, error) {
	var id, manifest string
	err := db.Pool.QueryRow(ctx, pg(query), args...).Scan(&id, &manifest)
	if noRows(err) {
		return "", "", fmt.Errorf("site %q: %w", args[0], libra.ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("select site: %w", err)
	}
	return id, manifest, nil
}
