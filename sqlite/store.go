package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

var _ libra.Store = (*DB)(nil)

// CreateProject stores a new project; PROJECT_EXISTS when the id, or its
// host name, is taken.
func (db *DB) CreateProject(ctx context.Context, p libra.Project) error {
	var host sql.NullString
	if h, ok := libra.ProjectHost(p.ID); ok {
		host = sql.NullString{String: h, Valid: true}
	}
	_, err := db.Writer.ExecContext(ctx,
		storesql.InsertProject,
		p.ID, p.OrgID, p.Name, host, micros(p.CreatedAt))
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint failed") {
			return libra.Errorf(libra.CodeProjectExists, "project %q already exists", p.ID)
		}
		return fmt.Errorf("insert project: %w", err)
	}
	return nil
}

// Project returns a project by id.
func (db *DB) Project(ctx context.Context, id string) (*libra.Project, error) {
	p, err := storesql.ScanProject(db.readRow(ctx, storesql.SelectProject, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("project %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select project: %w", err)
	}
	return &p, nil
}

// ListProjects returns an org's projects, ordered by id.
func (db *DB) ListProjects(ctx context.Context, orgID string) ([]libra.Project, error) {
	rows, err := db.readRows(ctx, storesql.SelectProjects, orgID)
	if err != nil {
		return nil, fmt.Errorf("select projects: %w", err)
	}
	defer rows.Close()
	out, err := storesql.Collect(rows, storesql.ScanProject)
	if err != nil {
		return nil, fmt.Errorf("select projects: %w", err)
	}
	return out, nil
}

// SetQuota sets an org's monthly limit; a negative limit removes it.
func (db *DB) SetQuota(ctx context.Context, orgID string, limit int) error {
	var err error
	if limit < 0 {
		_, err = db.Writer.ExecContext(ctx, storesql.DeleteQuota, orgID)
	} else {
		_, err = db.Writer.ExecContext(ctx,
			`INSERT INTO quotas (org_id, monthly_limit) VALUES (?, ?)
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
	err := db.readRow(ctx, storesql.SelectQuota, orgID).Scan(&q.Limit)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("select quota: %w", err)
	}
	err = db.readRow(ctx, storesql.SelectQuotaUsed, orgID, month).Scan(&q.Used)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("select quota usage: %w", err)
	}
	return &q, nil
}

// CreateDeployment charges the quota, inserts the deployment and enqueues its
// job, all in one transaction: either all three happen or none does.
//
// Concurrent calls are committed together (group commit, see committer.go):
// SQLite has one writer, and one commit per accepted deployment would cap the
// API at the writer's commit rate.
func (db *DB) CreateDeployment(ctx context.Context, d *libra.Deployment) error {
	if db.Enqueue == nil {
		return errors.New("sqlite: Enqueue is not set")
	}
	storesql.PrepareDeployment(d)
	steps, input, err := storesql.EncodeDeployment(d)
	if err != nil {
		return err
	}
	return db.committer().submit(ctx, &createRequest{d: d, steps: steps, input: input})
}

// Deployment returns a deployment by id.
func (db *DB) Deployment(ctx context.Context, id string) (*libra.Deployment, error) {
	d, err := storesql.ScanDeployment(db.readRow(ctx, storesql.SelectDeployment, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("deployment %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select deployment: %w", err)
	}
	return d, nil
}

const updateDeployment = `UPDATE deployments SET status = ?, current_step = ?, progress = max(progress, ?), steps = ?,
	error = ?, url = ?, attempt = ?, started_at = ?, finished_at = ? WHERE id = ?`

// updateDeploymentListeners is updateDeployment for a final status, which
// webhooks may announce: it says whether the project has endpoints.
var updateDeploymentListeners = updateDeployment + storesql.ReturningListeners("deployments.project_id")

// UpdateDeployment saves a deployment's mutable state and appends logs,
// with the events the change makes (storesql.UpdateEvents).
func (db *DB) UpdateDeployment(ctx context.Context, d *libra.Deployment, logs []libra.LogEntry) error {
	steps, err := storesql.EncodeSteps(d.Steps)
	if err != nil {
		return err
	}
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := guard(ctx, tx, d.ID); err != nil {
		return err
	}
	w := txWriter{db, tx}
	events, err := updateEvents(ctx, w, d, logs)
	if err != nil {
		return err
	}
	args := []any{d.Status, d.CurrentStep, d.Progress, steps, d.Error, d.URL, d.Attempt,
		storesql.OptMicros(d.StartedAt), storesql.OptMicros(d.FinishedAt), d.ID}
	ev := libra.FinalEvent(d.Status)
	listeners := 0
	if ev == "" {
		err = w.exec(ctx, updateDeployment, args...)
	} else {
		err = w.queryRow(ctx, updateDeploymentListeners, args...).Scan(&listeners)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil // no such deployment: nothing written, as with Exec
		}
	}
	if err != nil {
		return fmt.Errorf("update deployment %s: %w", d.ID, err)
	}
	if err := appendLogs(ctx, w, d.ID, logs); err != nil {
		return err
	}
	if err := db.outboxIf(ctx, tx, listeners, storesql.OutboxEvent{Event: ev, ProjectID: d.ProjectID, DeploymentID: d.ID,
		Dedupe: storesql.FinalDedupe(ev, d.ID, d.Attempt)}); err != nil {
		return err
	}
	return db.commitEvents(ctx, w, d.ID, events)
}

// updateEvents compares d with the stored row; the single writer keeps the
// row as read until the commit. An unknown deployment makes no events (and
// the update changes nothing).
func updateEvents(ctx context.Context, w txWriter, d *libra.Deployment, logs []libra.LogEntry) ([]storesql.EventRow, error) {
	prior, err := storesql.ScanPrior(w.queryRow(ctx, selectPrior, d.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("select deployment %s: %w", d.ID, err)
	}
	return storesql.UpdateEvents(prior, d, logs)
}

// commitEvents inserts events, commits and wakes the deployment's
// followers.
func (db *DB) commitEvents(ctx context.Context, w txWriter, id string, events []storesql.EventRow) error {
	if err := insertEvents(ctx, w, id, events); err != nil {
		return err
	}
	if err := w.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if len(events) > 0 {
		db.events.Notify(id)
	}
	db.prepareWanted(context.WithoutCancel(ctx))
	return nil
}

func insertEvents(ctx context.Context, w txWriter, id string, events []storesql.EventRow) error {
	const perStatement = 200 // 4 parameters each, well under SQLite's limit
	for len(events) > 0 {
		n := min(len(events), perStatement)
		var sb strings.Builder
		sb.WriteString(`INSERT INTO deployment_events (deployment_id, seq, type, data) VALUES `)
		args := make([]any, 0, n*4)
		for i, e := range events[:n] {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString("(?, ?, ?, ?)")
			args = append(args, id, e.Seq, e.Type, e.Data)
		}
		if err := w.exec(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		events = events[n:]
	}
	return nil
}

// RefundQuota gives back the quota a deployment used, at most once.
func (db *DB) RefundQuota(ctx context.Context, id string) error {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := guard(ctx, tx, id); err != nil {
		return err
	}
	var org, month string
	err = tx.QueryRowContext(ctx,
		`UPDATE deployments SET quota_refunded = 1 WHERE id = ? AND quota_refunded = 0 RETURNING org_id, quota_month`, id).
		Scan(&org, &month)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // already refunded, or no such deployment
	}
	if err != nil {
		return fmt.Errorf("mark refunded: %w", err)
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE quota_usage SET used = max(used - 1, 0) WHERE org_id = ? AND month = ?`, org, month); err != nil {
		return fmt.Errorf("refund quota: %w", err)
	}
	return tx.Commit()
}

// Publish records where a deployment's files are, moves its project's alias
// to it unless a newer deployment is already current, and attaches its custom
// domain. One transaction, so the alias switch is atomic.
func (db *DB) Publish(ctx context.Context, id, manifest, url string) error {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := guard(ctx, tx, id); err != nil {
		return err
	}
	pub, err := storesql.ScanPublished(tx.QueryRowContext(ctx, storesql.PublishManifest, manifest, url, id))
	if errors.Is(err, sql.ErrNoRows) {
		return storesql.PublishRefused(ctx, leaseTx{tx: tx}, id)
	}
	if err != nil {
		return fmt.Errorf("record manifest: %w", err)
	}
	if pub.MovesProduction() {
		if err := db.goLive(ctx, tx, id, pub); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// goLive moves the project's production alias to a production deployment
// that publishes (newest wins), tells the project's webhooks when it moved,
// and attaches its custom domain.
func (db *DB) goLive(ctx context.Context, tx *sql.Tx, id string, pub storesql.Published) error {
	// No row back: a newer deployment is production already.
	var listeners int
	err := tx.QueryRowContext(ctx, storesql.MoveAlias+storesql.ReturningListeners("projects.id"), id, pub.Seq, pub.ProjectID, pub.Seq).
		Scan(&listeners)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("move alias: %w", err)
	}
	if err := db.outboxIf(ctx, tx, listeners, storesql.OutboxEvent{Event: libra.EventDeploymentPromoted,
		ProjectID: pub.ProjectID, DeploymentID: id}); err != nil {
		return err
	}
	if pub.Domain == "" {
		return nil
	}
	var owner string
	err = tx.QueryRowContext(ctx,
		`INSERT INTO domains (domain, project_id, created_at) VALUES (?, ?, ?)
		 ON CONFLICT (domain) DO UPDATE SET domain = domain RETURNING project_id`,
		pub.Domain, pub.ProjectID, micros(libra.Now())).Scan(&owner)
	if err != nil {
		return fmt.Errorf("attach domain: %w", err)
	}
	if owner != pub.ProjectID {
		return libra.Permanent(libra.Errorf(libra.CodeDomainTaken, "domain %s belongs to another project", pub.Domain))
	}
	return nil
}

// DomainOwner returns the project a custom domain is attached to, or "".
func (db *DB) DomainOwner(ctx context.Context, domain string) (string, error) {
	var owner string
	err := db.readRow(ctx, storesql.DomainOwner, domain).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select domain: %w", err)
	}
	return owner, nil
}

// AppendLogs writes a batch of log lines. The workflow batches them because
// one transaction per line would starve SQLite's single writer during a
// chatty build.
func (db *DB) AppendLogs(ctx context.Context, id string, entries []libra.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := guard(ctx, tx, id); err != nil {
		return err
	}
	w := txWriter{db, tx}
	if err := appendLogs(ctx, w, id, entries); err != nil {
		return err
	}
	events, err := logEvents(ctx, w, id, entries)
	if err != nil {
		return err
	}
	return db.commitEvents(ctx, w, id, events)
}

// logEvents numbers one event per line; none for an unknown deployment.
func logEvents(ctx context.Context, w txWriter, id string, entries []libra.LogEntry) ([]storesql.EventRow, error) {
	var last int64
	err := w.queryRow(ctx, selectLastSeq, id).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("select last event seq: %w", err)
	}
	return storesql.LogEvents(last, entries)
}

func appendLogs(ctx context.Context, w txWriter, id string, entries []libra.LogEntry) error {
	const perStatement = 150 // 5 parameters each, well under SQLite's limit
	for len(entries) > 0 {
		n := min(len(entries), perStatement)
		var sb strings.Builder
		sb.WriteString(`INSERT INTO deployment_logs (deployment_id, ts, step, level, message) VALUES `)
		args := make([]any, 0, n*5)
		for i, e := range entries[:n] {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString("(?, ?, ?, ?, ?)")
			args = append(args, id, micros(e.Time), string(e.Step), e.Level, e.Message)
		}
		if err := w.exec(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("insert logs: %w", err)
		}
		entries = entries[n:]
	}
	return nil
}

// Logs returns the last limit log lines of a deployment, oldest first.
func (db *DB) Logs(ctx context.Context, id string, limit int) ([]libra.LogEntry, error) {
	rows, err := db.readRows(ctx, storesql.SelectLogs, id, limit)
	if err != nil {
		return nil, fmt.Errorf("select logs: %w", err)
	}
	defer rows.Close()
	return storesql.Collect(rows, storesql.ScanLog)
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

// SiteByDomain returns what a custom domain serves: nothing while it is
// pending, since nothing proved it is its project's to serve.
func (db *DB) SiteByDomain(ctx context.Context, domain string) (string, string, error) {
	return db.site(ctx, storesql.SiteByDomain, domain)
}

func (db *DB) site(ctx context.Context, query string, args ...any) (string, string, error) {
	var id, manifest string
	err := db.readRow(ctx, query, args...).Scan(&id, &manifest)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("site %q: %w", args[0], libra.ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("select site: %w", err)
	}
	return id, manifest, nil
}
