package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// Releases on PostgreSQL: the same rules and queries as SQLite's (see
// sqlite/releases.go). What differs is locking. SQLite's writer is one
// connection, so its write transactions never overlap; here they do, so the
// writes that decide what production serves (rollback, delete, prune) lock
// the project row first, and a rollback can never point the alias at a
// deployment that a concurrent delete or prune is removing.

// ListDeployments pages through a project's deployments, newest first.
func (db *DB) ListDeployments(ctx context.Context, projectID, cursor string, limit int) (*libra.DeploymentPage, error) {
	after, err := storesql.ParseCursor(cursor)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 20
	}
	page := &libra.DeploymentPage{Deployments: []libra.DeploymentInfo{}}
	// One snapshot for the page and the total.
	err = db.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, pg(storesql.CountDeployments), projectID).Scan(&page.Total); err != nil {
			return fmt.Errorf("count deployments: %w", err)
		}
		return fillPage(ctx, tx, page, projectID, after, limit)
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

func fillPage(ctx context.Context, tx pgx.Tx, page *libra.DeploymentPage, projectID string, after int64, limit int) error {
	rows, err := tx.Query(ctx, pg(storesql.ListDeployments), projectID, after, limit+1)
	if err != nil {
		return fmt.Errorf("select deployments: %w", err)
	}
	defer rows.Close()
	var lastSeq int64
	for rows.Next() {
		seq, d, err := storesql.ScanInfo(rows)
		if err != nil {
			return fmt.Errorf("scan deployment: %w", err)
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
		return fmt.Errorf("select deployments: %w", err)
	}
	return nil
}

// ProjectRelease returns the deployment a project's alias serves.
func (db *DB) ProjectRelease(ctx context.Context, projectID string) (*libra.Release, error) {
	var highest sql.NullInt64
	var current sql.NullString
	err := db.Pool.QueryRow(ctx, pg(storesql.SelectRelease), projectID).Scan(&highest, &current)
	if noRows(err) {
		return nil, fmt.Errorf("project %q: %w", projectID, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select project: %w", err)
	}
	rel := &libra.Release{}
	if !current.Valid {
		return rel, nil
	}
	seq, d, err := storesql.ScanInfo(db.Pool.QueryRow(ctx, pg(storesql.SelectInfo), current.String))
	if noRows(err) {
		return rel, nil
	}
	if err != nil {
		return nil, fmt.Errorf("select production deployment: %w", err)
	}
	rel.Production = &d
	rel.Pinned = highest.Valid && seq < highest.Int64
	return rel, nil
}

// lockProject takes the project row's lock for the transaction.
func lockProject(ctx context.Context, tx pgx.Tx, projectID string) error {
	_, err := tx.Exec(ctx, `SELECT 1 FROM projects WHERE id = $1 FOR UPDATE`, projectID)
	if err != nil {
		return fmt.Errorf("lock project: %w", err)
	}
	return nil
}

// Rollback points a project's alias at one of its completed deployments.
func (db *DB) Rollback(ctx context.Context, projectID, deploymentID string) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := lockProject(ctx, tx, projectID); err != nil {
			return err
		}
		var project, status, manifest string
		var seq int64
		err := tx.QueryRow(ctx, pg(storesql.RollbackTarget), deploymentID).Scan(&project, &status, &manifest, &seq)
		if noRows(err) || err == nil && project != projectID {
			// Another project's deployment is reported like a missing
			// one: the caller may not learn what other projects hold.
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
		if _, err := tx.Exec(ctx, pg(storesql.PointAlias), deploymentID, seq, seq, projectID); err != nil {
			return fmt.Errorf("move alias: %w", err)
		}
		if err := db.outbox(ctx, tx, storesql.OutboxEvent{Event: libra.EventDeploymentPromoted, ProjectID: projectID,
			DeploymentID: deploymentID}); err != nil {
			return err
		}
		return flipped(ctx, tx, projectFlip(projectID))
	})
}

// DeleteDeployment removes a deployment that is final and not production.
func (db *DB) DeleteDeployment(ctx context.Context, id string) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var project, status, alias, host string
		var current sql.NullString
		var job sql.NullInt64
		err := tx.QueryRow(ctx, pg(storesql.DeleteTarget)+` FOR UPDATE OF p`, id).
			Scan(&project, &status, &job, &current, &alias, &host)
		if noRows(err) {
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
		label, err := deleteDeployment(ctx, tx, id, job)
		if err != nil {
			return err
		}
		changes := []libra.SiteChange{{SiteLabel: label}}
		if alias != "" && host != "" {
			// The alias falls back to its previous deployment.
			changes = append(changes, libra.SiteChange{SiteLabel: libra.AliasLabel(alias, host)})
		}
		return flipped(ctx, tx, changes...)
	})
}

// deleteDeployment removes a deployment with its logs and its finished
// queue job, and returns its site label, whose host stops serving.
func deleteDeployment(ctx context.Context, tx pgx.Tx, id string, job sql.NullInt64) (label string, err error) {
	if _, err := tx.Exec(ctx, pg(storesql.DeleteLogs), id); err != nil {
		return "", fmt.Errorf("delete logs of %s: %w", id, err)
	}
	if _, err := tx.Exec(ctx, pg(storesql.DeleteEvents), id); err != nil {
		return "", fmt.Errorf("delete events of %s: %w", id, err)
	}
	if err := tx.QueryRow(ctx, pg(storesql.DeleteDeployment)+` RETURNING site_label`, id).Scan(&label); err != nil {
		return "", fmt.Errorf("delete deployment %s: %w", id, err)
	}
	if job.Valid {
		if _, err := tx.Exec(ctx, pg(storesql.DeleteFinishedJob), job.Int64); err != nil {
			return "", fmt.Errorf("delete job of %s: %w", id, err)
		}
	}
	return label, nil
}

// pruneBatch bounds one pruning transaction, so that the project rows it
// locks are not held long enough to delay publishing.
const pruneBatch = 200

// PruneDeployments applies retention, a batch per transaction. Each batch
// locks the projects it prunes from while it selects, so a rollback or a
// publish cannot slip in between choosing a deployment and deleting it.
func (db *DB) PruneDeployments(ctx context.Context, keep int, dryRun bool) ([]libra.PrunedDeployment, error) {
	if keep < 1 {
		return nil, fmt.Errorf("retention must keep at least 1 deployment, not %d", keep)
	}
	pruned := []libra.PrunedDeployment{}
	if dryRun {
		rows, err := db.Pool.Query(ctx, pg(storesql.Prunable), keep, nil)
		if err != nil {
			return nil, fmt.Errorf("select prunable deployments: %w", err)
		}
		got, _, err := scanPrunable(rows)
		return append(pruned, got...), err
	}
	for {
		var n int
		err := db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var err error
			n, err = pruneOnce(ctx, tx, keep, &pruned)
			return err
		})
		if err != nil {
			return pruned, err
		}
		if n < pruneBatch {
			return pruned, nil
		}
	}
}

func pruneOnce(ctx context.Context, tx pgx.Tx, keep int, pruned *[]libra.PrunedDeployment) (int, error) {
	rows, err := tx.Query(ctx, pg(storesql.Prunable)+` FOR UPDATE OF p`, keep, pruneBatch)
	if err != nil {
		return 0, fmt.Errorf("select prunable deployments: %w", err)
	}
	got, jobs, err := scanPrunable(rows)
	if err != nil {
		return 0, err
	}
	changes := make([]libra.SiteChange, len(got))
	for i, p := range got {
		if _, err := deleteDeployment(ctx, tx, p.ID, jobs[i]); err != nil {
			return 0, err
		}
		changes[i] = libra.SiteChange{SiteLabel: p.SiteLabel}
	}
	if err := flipped(ctx, tx, changes...); err != nil {
		return 0, err
	}
	// Reported only once the caller's transaction commits the batch; an
	// error rolls it back and returns what earlier batches removed.
	*pruned = append(*pruned, got...)
	return len(got), nil
}

func scanPrunable(rows pgx.Rows) ([]libra.PrunedDeployment, []sql.NullInt64, error) {
	defer rows.Close()
	var out []libra.PrunedDeployment
	var jobs []sql.NullInt64
	for rows.Next() {
		p, job, err := storesql.ScanPruned(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("scan prunable deployment: %w", err)
		}
		out = append(out, p)
		jobs = append(jobs, job)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("select prunable deployments: %w", err)
	}
	return out, jobs, nil
}

// refsPage bounds how many deployments' inputs are decoded per query.
const refsPage = 500

// EachDeploymentRefs calls fn for every deployment (of one project, or all)
// in pages, without holding a transaction across fn.
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
	var rows pgx.Rows
	var err error
	if projectID == "" {
		rows, err = db.Pool.Query(ctx, pg(storesql.AllRefs), after, refsPage)
	} else {
		rows, err = db.Pool.Query(ctx, pg(storesql.ProjectRefs), projectID, after, refsPage)
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
		out = append(out, r)
		last = seq
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("select deployment references: %w", err)
	}
	return out, last, nil
}

// Domains lists a project's custom domains, oldest first.
func (db *DB) Domains(ctx context.Context, projectID string) ([]libra.Domain, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.SelectDomains), projectID)
	if err != nil {
		return nil, fmt.Errorf("select domains: %w", err)
	}
	out, err := collect(rows, storesql.ScanDomain)
	if err != nil {
		return nil, fmt.Errorf("select domains: %w", err)
	}
	return out, nil
}

// AddDomain attaches a custom domain to a project. The domain's primary key
// decides between two projects racing for it.
func (db *DB) AddDomain(ctx context.Context, projectID, domain string) (bool, error) {
	tag, err := db.Pool.Exec(ctx, pg(storesql.InsertDomain), domain, projectID, storesql.Micros(libra.Now()))
	if err != nil {
		return false, fmt.Errorf("insert domain: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	owner, err := db.DomainOwner(ctx, domain)
	if err != nil {
		return false, err
	}
	if owner != projectID {
		return false, libra.Errorf(libra.CodeDomainTaken, "domain %s is attached to another project", domain)
	}
	return false, nil
}

// RemoveDomain detaches a project's custom domain.
func (db *DB) RemoveDomain(ctx context.Context, projectID, domain string) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, pg(storesql.RemoveDomain), domain, projectID)
		if err != nil {
			return fmt.Errorf("delete domain: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return libra.Errorf(libra.CodeNotFound, "project %s has no domain %s", projectID, domain)
		}
		return flipped(ctx, tx, libra.SiteChange{Domain: domain})
	})
}

// DomainToken returns the project's verification token, making it on first
// use. The UPDATE sets it only while it is NULL, so two nodes racing to make
// it agree on the one that was written first.
func (db *DB) DomainToken(ctx context.Context, projectID string) (string, error) {
	var token sql.NullString
	err := db.Pool.QueryRow(ctx, pg(storesql.SelectDomainToken), projectID).Scan(&token)
	if noRows(err) {
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
	if err := db.Pool.QueryRow(ctx, pg(storesql.StoreToken), fresh, projectID).Scan(&token); err != nil {
		return "", fmt.Errorf("store domain token: %w", err)
	}
	return token.String, nil
}

// RecordDomainCheck stores the outcome of a DNS check of a domain. A check
// that verified or refuted it may change what the domain serves, so it is
// announced as a flip; one that went unanswered changes nothing served.
func (db *DB) RecordDomainCheck(ctx context.Context, projectID, domain string, check libra.DomainCheck) (*libra.Domain, error) {
	now := storesql.Micros(libra.Now())
	query, args := storesql.DomainUnanswered, []any{now, check.Reason}
	switch {
	case check.Verified:
		query, args = storesql.DomainVerified, []any{now, now}
	case check.Definitive:
		query, args = storesql.DomainRefuted, []any{now, check.Reason}
	}
	args = append(args, domain, projectID)
	var d libra.Domain
	err := db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		d, err = storesql.ScanDomain(tx.QueryRow(ctx, pg(query+storesql.DomainCheckWhere), args...))
		if noRows(err) {
			return libra.Errorf(libra.CodeNotFound, "project %s has no domain %s", projectID, domain)
		}
		if err != nil {
			return fmt.Errorf("record domain check: %w", err)
		}
		if !check.Verified && !check.Definitive {
			return nil
		}
		return flipped(ctx, tx, libra.SiteChange{Domain: d.Domain})
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// PendingDomains returns pending domains due for a background check.
func (db *DB) PendingDomains(ctx context.Context, attachedAfter, checkedBefore time.Time, limit int) ([]libra.PendingDomain, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.PendingDomains),
		storesql.Micros(attachedAfter), storesql.Micros(checkedBefore), limit)
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
	err := db.Pool.QueryRow(ctx, pg(storesql.VerifiedDomainOrg), domain).Scan(&org)
	if noRows(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select domain org: %w", err)
	}
	return org, nil
}
