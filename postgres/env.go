package postgres

import (
	"context"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// ListEnv returns a project's build environment, ordered by key.
func (db *DB) ListEnv(ctx context.Context, projectID string) ([]libra.EnvVar, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.ListEnv), projectID)
	if err != nil {
		return nil, fmt.Errorf("list environment: %w", err)
	}
	out, err := collect(rows, storesql.ScanEnv)
	if err != nil {
		return nil, fmt.Errorf("list environment: %w", err)
	}
	return out, nil
}

// PutEnv sets a variable. The project row is locked first, so that nodes
// setting variables of one project at once count in turn and the cap holds.
func (db *DB) PutEnv(ctx context.Context, projectID string, v libra.EnvVar) error {
	return db.inLeaseTx(ctx, func(tx leaseTx) error {
		return storesql.PutEnv(ctx, tx, storesql.LockEnvProject+" FOR UPDATE", projectID, v)
	})
}

// DeleteEnv removes a variable.
func (db *DB) DeleteEnv(ctx context.Context, projectID, key string) error {
	tag, err := db.Pool.Exec(ctx, pg(storesql.DeleteEnv), projectID, key)
	if err != nil {
		return fmt.Errorf("delete environment variable: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("environment variable %q: %w", key, libra.ErrNotFound)
	}
	return nil
}
