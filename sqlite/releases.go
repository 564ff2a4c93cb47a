package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// Releases on SQLite. projects.current_deployment is what the alias serves;
// projects.current_seq is the seq of the newest deployment the project ever
// published. Publish moves both forward; Rollback moves only the first, so
// that "newest wins" still compares against everything published before.

// ListDeployments pages through a project's deployments, newest first. The
// cursor is the seq of the last deployment of the previous page: keyset
// paging, so a page is one index range scan however deep it is, and a
// deployment accepted meanwhile does not shift later pages.
func (db *DB) ListDeployments(ctx context.Context, projectID, cursor string, limit int) (*libra.DeploymentPage, error) {
	after, err := storesql.ParseCursor(cursor)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 20
	}
	// One read transaction: the page and the total come from one snapshot.
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	page := &libra.DeploymentPage{Deployments: []libra.DeploymentInfo{}}
	if err := tx.QueryRowContext(ctx, storesql.CountDeployments, projectID).Scan(&page.Total); err != nil {
		return nil, fmt.Errorf("count deployments: %w", err)
	}
	rows, err := tx.QueryContext(ctx, storesql.ListDeployments, projectID, after, limit+1)
	if err != nil {
		return nil, fmt.Errorf("select deployments: %w", err)
	}
	defer rows.Close()
	var lastSeq int64
	for rows.Next() {
		seq, d, err := storesql.ScanInfo(rows)
		if err != nil {
			return nil, fmt.Errorf("scan deployment: %w", err)
		}
		if len(page.Deployments) == limit {
			// The extra row only says that another page exists.
			page.Next = strconv.FormatInt(lastSeq, 10)
			break
		}
		page.Deployments = append(page.Deployments, d)
		lastSeq = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select deployments: %w", err)
	}
	return page, nil
}

// ProjectRelease returns the deployment a project's alias serves.
func (db *DB) ProjectRelease(ctx context.Context, projectID string) (*libra.Release, error) {
	var highest sql.NullInt64
	var current sql.NullString
	err := db.readRow(ctx, storesql.SelectRelease, projectID).Scan(&highest, &current)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("project %q: %w", projectID, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select project: %w", err)
	}
	rel := &libra.Release{}
	if !current.Valid {
		return rel, nil
	}
	seq, d, err := storesql.ScanInfo(db.readRow(ctx, storesql.SelectInfo, current.String))
	if errors.Is(err, sql.ErrNoRows) {
		// Production cannot be deleted through the store; a row removed
		// by hand serves nothing, and neither does the alias.
		return rel, nil
	}
	if err != nil {
		return nil, fmt.Errorf("select production deployment: %w", err)
	}
	rel.Production = &d
	rel.Pinned = highest.Valid && seq < highest.Int64
	return rel, nil
}

// Rollback points a project's alias at one of its completed deployments.
func (db *DB) Rollback(ctx context.Context, projectID, deploymentID string) error {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var project, status, manifest string
	var seq int64
	err = tx.QueryRowContext(ctx, storesql.RollbackTarget, deploymentID).
		Scan(&project, &status, &manifest, &seq)
	if errors.Is(err, sql.ErrNoRows) || err == nil && project != projectID {
		// Another project's deployment is reported like a missing one:
		// the caller may not learn what other projects hold.
		return libra.Errorf(libra.CodeDeploymentNotFound, "project %s has no deployment %s", projectID, deploymentID)
	}
	if err != nil {
		return fmt.Errorf("select deployment: %w", err)
	}
	if status != string(libra.StatusCompleted) || manifest == "" {
		return &libra.Error{Code: libra.CodeConflict,
			Message: fmt.Sprintf("deployment %s is %s; only a completed deployment can serve production", deploymentID, status),
			Details: map[string]any{"status": status}}
	}
	if _, err := tx.ExecContext(ctx, storesql.PointAlias, deploymentID, seq, seq, projectID); err != nil {
		return fmt.Errorf("move alias: %w", err)
	}
	if err := db.outbox(ctx, tx, storesql.OutboxEvent{Event: libra.EventDeploymentPromoted, ProjectID: projectID,
		DeploymentID: deploymentID}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// DeleteDeployment removes a deployment that is final and not production.
func (db *DB) DeleteDeployment(ctx context.Context, id string) error {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	// alias and host name the stable alias that may fall back; on one
	// node the API's Invalidate covers it, so only PostgreSQL uses them.
	var project, status, alias, host string
	var current sql.NullString
	var job sql.NullInt64
	err = tx.QueryRowContext(ctx, storesql.DeleteTarget, id).
		Scan(&project, &status, &job, &current, &alias, &host)
	if errors.Is(err, sql.ErrNoRows) {
		return libra.Errorf(libra.CodeDeploymentNotFound, "no deployment %s", id)
	}
	if err != nil {
		return fmt.Errorf("select deployment: %w", err)
	}
	if current.String == id {
		return libra.Errorf(libra.CodeConflict,
			"deployment %s is the production deployment of project %s; roll back to another deployment first", id, project)
	}
	if !libra.Status(status).Final() {
		// Its worker would publish it after all, into a row that is gone.
		return libra.Errorf(libra.CodeConflict, "deployment %s is %s; wait until it is completed or failed", id, status)
	}
	if err := deleteDeployments(ctx, tx, []deletion{{id, job}}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

type deletion struct {
	id  string
	job sql.NullInt64
}

// deleteDeployments removes deployments with their logs and their
// finished queue jobs.
func deleteDeployments(ctx context.Context, tx *sql.Tx, ds []deletion) error {
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, storesql.DeleteLogs, d.id); err != nil {
			return fmt.Errorf("delete logs of %s: %w", d.id, err)
		}
		if _, err := tx.ExecContext(ctx, storesql.DeleteEvents, d.id); err != nil {
			return fmt.Errorf("delete events of %s: %w", d.id, err)
		}
		if _, err := tx.ExecContext(ctx, storesql.DeleteDeployment, d.id); err != nil {
			return fmt.Errorf("delete deployment %s: %w", d.id, err)
		}
		if d.job.Valid {
			if _, err := tx.ExecContext(ctx, storesql.DeleteFinishedJob, d.job.Int64); err != nil {
				return fmt.Errorf("delete job of %s: %w", d.id, err)
			}
		}
	}
	return nil
}

// pruneBatch bounds one pruning transaction, so that SQLite's one writer is
// never held long enough to delay accepting deployments.
const pruneBatch = 200

// PruneDeployments applies retention. Each batch selects and deletes in one
// write transaction, so a rollback or a publish cannot slip in between
// choosing a deployment and deleting it.
func (db *DB) PruneDeployments(ctx context.Context, keep int, dryRun bool) ([]libra.PrunedDeployment, error) {
	if keep < 1 {
		return nil, fmt.Errorf("retention must keep at least 1 deployment, not %d", keep)
	}
	pruned := []libra.PrunedDeployment{}
	if dryRun {
		got, _, err := selectPrunable(ctx, db.reader, keep, -1)
		if err != nil {
			return nil, err
		}
		return append(pruned, got...), nil
	}
	for {
		n, err := db.pruneOnce(ctx, keep, &pruned)
		if err != nil {
			return pruned, err
		}
		if n < pruneBatch {
			return pruned, nil
		}
	}
}

func (db *DB) pruneOnce(ctx context.Context, keep int, pruned *[]libra.PrunedDeployment) (int, error) {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	got, dels, err := selectPrunable(ctx, tx, keep, pruneBatch)
	if err != nil {
		return 0, err
	}
	if err := deleteDeployments(ctx, tx, dels); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	*pruned = append(*pruned, got...)
	return len(got), nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func selectPrunable(ctx context.Context, q querier, keep, limit int) ([]libra.PrunedDeployment, []deletion, error) {
	rows, err := q.QueryContext(ctx, storesql.Prunable, keep, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("select prunable deployments: %w", err)
	}
	defer rows.Close()
	var out []libra.PrunedDeployment
	var dels []deletion
	for rows.Next() {
		p, job, err := storesql.ScanPruned(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("scan prunable deployment: %w", err)
		}
		out = append(out, p)
		dels = append(dels, deletion{p.ID, job})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("select prunable deployments: %w", err)
	}
	return out, dels, nil
}

// refsPage bounds how many deployments' inputs are decoded per query.
const refsPage = 500

// EachDeploymentRefs calls fn for every deployment (of one project, or all)
// in pages: fn may read manifests from disk, and a read transaction held
// open across all of that would keep SQLite from checkpointing its WAL.
// Deployments deleted while it pages are simply not seen; ones added are
// young enough that a collector's grace period protects their blobs.
func (db *DB) EachDeploymentRefs(ctx context.Context, projectID string, fn func(libra.DeploymentRefs) error) error {
	var after int64
	for {
		refs, last, err := db.refsPage(ctx, projectID, after)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(refs) < refsPage {
			return nil
		}
		after = last
	}
}

func (db *DB) refsPage(ctx context.Context, projectID string, after int64) ([]libra.DeploymentRefs, int64, error) {
	var rows *sql.Rows
	var err error
	if projectID == "" {
		rows, err = db.readRows(ctx, storesql.AllRefs, after, refsPage)
	} else {
		rows, err = db.readRows(ctx, storesql.ProjectRefs, projectID, after, refsPage)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("select deployment references: %w", err)
	}
	defer rows.Close()
	var out []libra.DeploymentRefs
	var last int64
	for rows.Next() {
		seq, r, err := storesql.ScanRefs(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("scan deployment references: %w", err)
		}
		last = seq
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("select deployment references: %w", err)
	}
	return out, last, nil
}

// Domains lists a project's custom domains, oldest first.
func (db *DB) Domains(ctx context.Context, projectID string) ([]libra.Domain, error) {
	rows, err := db.readRows(ctx, storesql.SelectDomains, projectID)
	if err != nil {
		return nil, fmt.Errorf("select domains: %w", err)
	}
	defer rows.Close()
	out := []libra.Domain{}
	for rows.Next() {
		d, err := storesql.ScanDomain(rows)
		if err != nil {
			return nil, fmt.Errorf("scan domain: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// AddDomain attaches a custom domain to a project. The domain's primary key
// decides between two projects racing for it.
func (db *DB) AddDomain(ctx context.Context, projectID, domain string) (bool, error) {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, storesql.InsertDomain, domain, projectID, micros(libra.Now()))
	if err != nil {
		return false, fmt.Errorf("insert domain: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("insert domain: %w", err)
	} else if n == 1 {
		if err := tx.Commit(); err != nil {
			return false, fmt.Errorf("commit: %w", err)
		}
		return true, nil
	}
	var owner string
	if err := tx.QueryRowContext(ctx, storesql.DomainOwner, domain).Scan(&owner); err != nil {
		return false, fmt.Errorf("select domain: %w", err)
	}
	if owner != projectID {
		return false, libra.Errorf(libra.CodeDomainTaken, "domain %s is attached to another project", domain)
	}
	return false, nil
}

// RemoveDomain detaches a project's custom domain.
func (db *DB) RemoveDomain(ctx context.Context, projectID, domain string) error {
	res, err := db.Writer.ExecContext(ctx, storesql.RemoveDomain, domain, projectID)
	if err != nil {
		return fmt.Errorf("delete domain: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete domain: %w", err)
	}
	if n == 0 {
		return libra.Errorf(libra.CodeNotFound, "project %s has no domain %s", projectID, domain)
	}
	return nil
}

// DomainToken returns the project's verification token, making it on first
// use. The UPDATE sets it only while it is NULL, so two nodes racing to make
// it agree on the one that was written first.
func (db *DB) DomainToken(ctx context.Context, projectID string) (string, error) {
	var token sql.NullString
	err := db.readRow(ctx, storesql.SelectDomainToken, projectID).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) {
		return "", libra.Errorf(libra.CodeProjectNotFound, "project %q not found", projectID)
	}
	if err != nil {
		return "", fmt.Errorf("select domain token: %w", err)
	}
	if token.Valid && token.String != "" {
		return token.String, nil
	}
	fresh, err := storesql.NewDomainToken()
	if err != nil {
		return "", err
	}
	err = db.Writer.QueryRowContext(ctx, storesql.StoreToken, fresh, projectID).Scan(&token)
	if err != nil {
		return "", fmt.Errorf("store domain token: %w", err)
	}
	return token.String, nil
}

// RecordDomainCheck stores the outcome of a DNS check of a domain.
func (db *DB) RecordDomainCheck(ctx context.Context, projectID, domain string, check libra.DomainCheck) (*libra.Domain, error) {
	now := micros(libra.Now())
	var query string
	var args []any
	switch {
	case check.Verified:
		query = storesql.DomainVerified
		args = []any{now, now}
	case check.Definitive:
		query = storesql.DomainRefuted
		args = []any{now, check.Reason}
	default:
		query = storesql.DomainUnanswered
		args = []any{now, check.Reason}
	}
	args = append(args, domain, projectID)
	d, err := storesql.ScanDomain(db.Writer.QueryRowContext(ctx, query+storesql.DomainCheckWhere, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, libra.Errorf(libra.CodeNotFound, "project %s has no domain %s", projectID, domain)
	}
	if err != nil {
		return nil, fmt.Errorf("record domain check: %w", err)
	}
	return &d, nil
}

// PendingDomains returns pending domains due for a background check.
func (db *DB) PendingDomains(ctx context.Context, attachedAfter, checkedBefore time.Time, limit int) ([]libra.PendingDomain, error) {
	rows, err := db.readRows(ctx, storesql.PendingDomains, micros(attachedAfter), micros(checkedBefore), limit)
	if err != nil {
		return nil, fmt.Errorf("select pending domains: %w", err)
	}
	defer rows.Close()
	var out []libra.PendingDomain
	for rows.Next() {
		var d libra.PendingDomain
		if err := rows.Scan(&d.Domain, &d.ProjectID, &d.Token); err != nil {
			return nil, fmt.Errorf("scan pending domain: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// VerifiedDomainOrg returns the org owning a verified custom domain, or "".
func (db *DB) VerifiedDomainOrg(ctx context.Context, domain string) (string, error) {
	var org string
	err := db.readRow(ctx, storesql.VerifiedDomainOrg, domain).Scan(&org)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select domain org: %w", err)
	}
	return org, nil
}
