package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// DeleteProject removes a project and everything it owns in one
// transaction. The project row is locked first: a deployment being queued
// for it waits on that lock (its foreign key) and then fails, so none can
// slip in between the active check and the delete. Every node is told
// (NOTIFY) which hosts stopped serving.
func (db *DB) DeleteProject(ctx context.Context, orgID, id string) (*libra.ProjectDeletion, error) {
	var del libra.ProjectDeletion
	err := db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := checkDeletable(ctx, tx, orgID, id); err != nil {
			return err
		}
		var err error
		if del.SiteLabels, err = column(ctx, tx, pg(storesql.ProjectSiteLabels), id); err != nil {
			return err
		}
		if del.Domains, err = column(ctx, tx, pg(storesql.ProjectDomains), id); err != nil {
			return err
		}
		for _, q := range storesql.DeleteProjectSteps {
			if _, err := tx.Exec(ctx, pg(q), id); err != nil {
				return fmt.Errorf("delete project %s: %w", id, err)
			}
		}
		return flipped(ctx, tx, deletionFlips(id, del)...)
	})
	if err != nil {
		return nil, err
	}
	return &del, nil
}

// deletionFlips are the site changes a project's deletion makes.
func deletionFlips(id string, del libra.ProjectDeletion) []libra.SiteChange {
	changes := []libra.SiteChange{projectFlip(id)}
	for _, l := range del.SiteLabels {
		changes = append(changes, libra.SiteChange{SiteLabel: l})
	}
	for _, d := range del.Domains {
		changes = append(changes, libra.SiteChange{Domain: d})
	}
	return changes
}

// checkDeletable locks the project row and checks that it has no queued or
// running deployment.
func checkDeletable(ctx context.Context, tx pgx.Tx, orgID, id string) error {
	var org string
	err := tx.QueryRow(ctx, `SELECT org_id FROM projects WHERE id = $1 FOR UPDATE`, id).Scan(&org)
	if noRows(err) || (err == nil && org != orgID) {
		return fmt.Errorf("project %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("lock project: %w", err)
	}
	var active int
	if err := tx.QueryRow(ctx, pg(storesql.ProjectActiveDeployments), id).Scan(&active); err != nil {
		return fmt.Errorf("count active deployments: %w", err)
	}
	if active > 0 {
		return libra.Errorf(libra.CodeConflict,
			"project %s has %d queued or running deployment(s); wait until they finish, then delete it", id, active)
	}
	return nil
}

// column reads a one-column text query.
func column(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
