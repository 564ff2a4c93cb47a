package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Releases on SQLite. projects.current_deployment is what the alias serves;
// projects.current_seq is the seq of the newest deployment the project ever
// published. Publish moves both forward; Rollback moves only the first, so
// that "newest wins" still compares against everything published before.

const infoColumns = `d.seq, d.id, d.project_id, d.org_id, d.status, d.error, d.url, d.manifest,
	d.created_at, d.started_at, d.finished_at, coalesce(p.current_deployment = d.id, 0)`

func scanInfo(row interface{ Scan(...any) error }) (int64, libra.DeploymentInfo, error) {
	var d libra.DeploymentInfo
	var seq, created int64
	var started, finished sql.NullInt64
	err := row.Scan(&seq, &d.ID, &d.ProjectID, &d.OrgID, &d.Status, &d.Error, &d.URL, &d.Manifest,
		&created, &started, &finished, &d.Production)
	if err != nil {
		return 0, d, err
	}
	d.CreatedAt = fromMicros(created)
	d.StartedAt = fromOptMicros(started)
	d.FinishedAt = fromOptMicros(finished)
	return seq, d, nil
}

// ListDeployments pages through a project's deployments, newest first. The
// cursor is the seq of the last deployment of the previous page: keyset
// paging, so a page is one index range scan however deep it is, and a
// deployment accepted meanwhile does not shift later pages.
func (db *DB) ListDeployments(ctx context.Context, projectID, cursor string, limit int) (*libra.DeploymentPage, error) {
	// The first page starts below every seq, so that one spelling of the
	// query serves all pages with an index range scan.
	after := int64(math.MaxInt64)
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n <= 0 {
			return nil, libra.Errorf(libra.CodeValidation, "cursor %.40q is not one this service returned", cursor)
		}
		after = n
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
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM deployments WHERE project_id = ?`, projectID).Scan(&page.Total); err != nil {
		return nil, fmt.Errorf("count deployments: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+infoColumns+` FROM deployments d JOIN projects p ON p.id = d.project_id
		WHERE d.project_id = ? AND d.seq < ? ORDER BY d.seq DESC LIMIT ?`,
		projectID, after, limit+1)
	if err != nil {
		return nil, fmt.Errorf("select deployments: %w", err)
	}
	defer rows.Close()
	var lastSeq int64
	for rows.Next() {
		seq, d, err := scanInfo(rows)
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
	err := db.readRow(ctx,
		`SELECT current_seq, current_deployment FROM projects WHERE id = ?`, projectID).Scan(&highest, &current)
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
	seq, d, err := scanInfo(db.readRow(ctx, `SELECT `+infoColumns+`
		FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.id = ?`, current.String))
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
	err = tx.QueryRowContext(ctx, `SELECT project_id, status, manifest FROM deployments WHERE id = ?`, deploymentID).
		Scan(&project, &status, &manifest)
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
	if _, err := tx.ExecContext(ctx, `UPDATE projects SET current_deployment = ? WHERE id = ?`, deploymentID, projectID); err != nil {
		return fmt.Errorf("move alias: %w", err)
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
	var project, status string
	var current sql.NullString
	var job sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT d.project_id, d.status, d.job_id, p.current_deployment
		FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.id = ?`, id).
		Scan(&project, &status, &job, &current)
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

// deleteDeployments removes deployments with their logs and their queue
// jobs. Only finished jobs go: `dlq list` would otherwise show, and `dlq
// retry` offer, deployments that no longer exist.
func deleteDeployments(ctx context.Context, tx *sql.Tx, ds []deletion) error {
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, `DELETE FROM deployment_logs WHERE deployment_id = ?`, d.id); err != nil {
			return fmt.Errorf("delete logs of %s: %w", d.id, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM deployments WHERE id = ?`, d.id); err != nil {
			return fmt.Errorf("delete deployment %s: %w", d.id, err)
		}
		if d.job.Valid {
			if _, err := tx.ExecContext(ctx, `DELETE FROM river_job WHERE id = ? AND state IN ('completed', 'cancelled', 'discarded')`,
				d.job.Int64); err != nil {
				return fmt.Errorf("delete job of %s: %w", d.id, err)
			}
		}
	}
	return nil
}

// prunable selects deployments that retention may remove: final, not
// production, and not among their project's newest keep.
const prunable = `SELECT d.id, d.site_label, d.project_id, d.status, d.created_at, d.job_id FROM (
	SELECT id, site_label, project_id, status, created_at, job_id, seq,
	       row_number() OVER (PARTITION BY project_id ORDER BY seq DESC) AS rank
	FROM deployments) d
	JOIN projects p ON p.id = d.project_id
	WHERE d.rank > ? AND d.status IN ('completed', 'failed')
	  AND (p.current_deployment IS NULL OR p.current_deployment != d.id)
	ORDER BY d.seq LIMIT ?`

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
	rows, err := q.QueryContext(ctx, prunable, keep, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("select prunable deployments: %w", err)
	}
	defer rows.Close()
	var out []libra.PrunedDeployment
	var dels []deletion
	for rows.Next() {
		var p libra.PrunedDeployment
		var created int64
		var job sql.NullInt64
		if err := rows.Scan(&p.ID, &p.SiteLabel, &p.ProjectID, &p.Status, &created, &job); err != nil {
			return nil, nil, fmt.Errorf("scan prunable deployment: %w", err)
		}
		p.CreatedAt = fromMicros(created)
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
	// Two spellings rather than one with "? = '' OR": SQLite plans a query
	// once, and only the second can use the (project_id, seq) index.
	var rows *sql.Rows
	var err error
	if projectID == "" {
		rows, err = db.readRows(ctx, `SELECT seq, id, project_id, status, manifest, input FROM deployments
			WHERE seq > ? ORDER BY seq LIMIT ?`, after, refsPage)
	} else {
		rows, err = db.readRows(ctx, `SELECT seq, id, project_id, status, manifest, input FROM deployments
			WHERE project_id = ? AND seq > ? ORDER BY seq LIMIT ?`, projectID, after, refsPage)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("select deployment references: %w", err)
	}
	defer rows.Close()
	var out []libra.DeploymentRefs
	var last int64
	for rows.Next() {
		var r libra.DeploymentRefs
		var input string
		if err := rows.Scan(&last, &r.ID, &r.ProjectID, &r.Status, &r.Manifest, &input); err != nil {
			return nil, 0, fmt.Errorf("scan deployment references: %w", err)
		}
		if err := json.Unmarshal([]byte(input), &r.Inputs); err != nil {
			// A row whose input cannot be read would silently drop its
			// blobs from what is kept: stop instead.
			return nil, 0, fmt.Errorf("decode input of %s: %w", r.ID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("select deployment references: %w", err)
	}
	return out, last, nil
}

// domainColumns are what scanDomain reads.
const domainColumns = `domain, project_id, created_at, verified_at, checked_at, check_error`

func scanDomain(row interface{ Scan(...any) error }) (libra.Domain, error) {
	var d libra.Domain
	var created int64
	var verified, checked sql.NullInt64
	if err := row.Scan(&d.Domain, &d.ProjectID, &created, &verified, &checked, &d.CheckError); err != nil {
		return d, err
	}
	d.CreatedAt = fromMicros(created)
	d.VerifiedAt = optionalMicros(verified)
	d.CheckedAt = optionalMicros(checked)
	return d, nil
}

func optionalMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// Domains lists a project's custom domains, oldest first.
func (db *DB) Domains(ctx context.Context, projectID string) ([]libra.Domain, error) {
	rows, err := db.readRows(ctx,
		`SELECT `+domainColumns+` FROM domains WHERE project_id = ? ORDER BY created_at, domain`, projectID)
	if err != nil {
		return nil, fmt.Errorf("select domains: %w", err)
	}
	defer rows.Close()
	out := []libra.Domain{}
	for rows.Next() {
		d, err := scanDomain(rows)
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
	res, err := tx.ExecContext(ctx, `INSERT INTO domains (domain, project_id, created_at) VALUES (?, ?, ?)
		ON CONFLICT (domain) DO NOTHING`, domain, projectID, micros(libra.Now()))
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
	if err := tx.QueryRowContext(ctx, `SELECT project_id FROM domains WHERE domain = ?`, domain).Scan(&owner); err != nil {
		return false, fmt.Errorf("select domain: %w", err)
	}
	if owner != projectID {
		return false, libra.Errorf(libra.CodeDomainTaken, "domain %s is attached to another project", domain)
	}
	return false, nil
}

// RemoveDomain detaches a project's custom domain.
func (db *DB) RemoveDomain(ctx context.Context, projectID, domain string) error {
	res, err := db.Writer.ExecContext(ctx, `DELETE FROM domains WHERE domain = ? AND project_id = ?`, domain, projectID)
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
	err := db.readRow(ctx, `SELECT domain_token FROM projects WHERE id = ?`, projectID).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) {
		return "", libra.Errorf(libra.CodeProjectNotFound, "project %q not found", projectID)
	}
	if err != nil {
		return "", fmt.Errorf("select domain token: %w", err)
	}
	if token.Valid && token.String != "" {
		return token.String, nil
	}
	fresh, err := newDomainToken()
	if err != nil {
		return "", err
	}
	err = db.Writer.QueryRowContext(ctx, `UPDATE projects SET domain_token = coalesce(domain_token, ?)
		WHERE id = ? RETURNING domain_token`, fresh, projectID).Scan(&token)
	if err != nil {
		return "", fmt.Errorf("store domain token: %w", err)
	}
	return token.String, nil
}

// newDomainToken returns 160 random bits, hex-encoded: unguessable, and
// plain enough to paste into any DNS provider's TXT field.
func newDomainToken() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("domain token: %w", err)
	}
	return "libra-verify-" + hex.EncodeToString(b), nil
}

// RecordDomainCheck stores the outcome of a DNS check of a domain.
func (db *DB) RecordDomainCheck(ctx context.Context, projectID, domain string, check libra.DomainCheck) (*libra.Domain, error) {
	now := micros(libra.Now())
	var query string
	var args []any
	switch {
	case check.Verified:
		query = `UPDATE domains SET verified_at = coalesce(verified_at, ?), checked_at = ?, check_error = ''`
		args = []any{now, now}
	case check.Definitive:
		query = `UPDATE domains SET verified_at = NULL, checked_at = ?, check_error = ?`
		args = []any{now, check.Reason}
	default:
		query = `UPDATE domains SET checked_at = ?, check_error = ?`
		args = []any{now, check.Reason}
	}
	args = append(args, domain, projectID)
	d, err := scanDomain(db.Writer.QueryRowContext(ctx,
		query+` WHERE domain = ? AND project_id = ? RETURNING `+domainColumns, args...))
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
	rows, err := db.readRows(ctx, `SELECT m.domain, m.project_id, p.domain_token
		FROM domains m JOIN projects p ON p.id = m.project_id
		WHERE m.verified_at IS NULL AND p.domain_token IS NOT NULL AND m.created_at > ?
		  AND (m.checked_at IS NULL OR m.checked_at < ?)
		ORDER BY coalesce(m.checked_at, 0), m.domain LIMIT ?`, micros(attachedAfter), micros(checkedBefore), limit)
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
	err := db.readRow(ctx, `SELECT p.org_id FROM domains m JOIN projects p ON p.id = m.project_id
		WHERE m.domain = ? AND m.verified_at IS NOT NULL`, domain).Scan(&org)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select domain org: %w", err)
	}
	return org, nil
}
