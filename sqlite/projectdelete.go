package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// DeleteProject removes a project and everything it owns in one write
// transaction; SQLite's one writer keeps a deployment from being queued
// for it meanwhile.
func (db *DB) DeleteProject(ctx context.Context, orgID, id string) (*libra.ProjectDeletion, error) {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := checkDeletable(ctx, tx, orgID, id); err != nil {
		return nil, err
	}
	var del libra.ProjectDeletion
	if del.SiteLabels, err = column(ctx, tx, storesql.ProjectSiteLabels, id); err != nil {
		return nil, err
	}
	if del.Domains, err = column(ctx, tx, storesql.ProjectDomains, id); err != nil {
		return nil, err
	}
	for _, q := range storesql.DeleteProjectSteps {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return nil, fmt.Errorf("delete project %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return &del, nil
}

// checkDeletable: the project exists and has no queued or running deployment.
func checkDeletable(ctx context.Context, tx *sql.Tx, orgID, id string) error {
	var org string
	err := tx.QueryRowContext(ctx, `SELECT org_id FROM projects WHERE id = ?`, id).Scan(&org)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && org != orgID) {
		return fmt.Errorf("project %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("select project: %w", err)
	}
	var active int
	if err := tx.QueryRowContext(ctx, storesql.ProjectActiveDeployments, id).Scan(&active); err != nil {
		return fmt.Errorf("count active deployments: %w", err)
	}
	if active > 0 {
		return libra.Errorf(libra.CodeConflict,
			"project %s has %d queued or running deployment(s); wait until they finish, then delete it", id, active)
	}
	return nil
}

// column reads a one-column text query.
func column(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
