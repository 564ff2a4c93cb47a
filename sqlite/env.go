package sqlite

import (
	"context"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// ListEnv returns a project's build environment, ordered by key.
func (db *DB) ListEnv(ctx context.Context, projectID string) ([]libra.EnvVar, error) {
	rows, err := db.readRows(ctx, storesql.ListEnv, projectID)
	if err != nil {
		return nil, fmt.Errorf("list environment: %w", err)
	}
	defer rows.Close()
	out, err := storesql.Collect(rows, storesql.ScanEnv)
	if err != nil {
		return nil, fmt.Errorf("list environment: %w", err)
	}
	return out, nil
}

// PutEnv sets a variable; SQLite's one writer orders the count and the write.
func (db *DB) PutEnv(ctx context.Context, projectID string, v libra.EnvVar) error {
	return db.inTx(ctx, func(tx leaseTx) error {
		return storesql.PutEnv(ctx, tx, storesql.LockEnvProject, projectID, v)
	})
}

// DeleteEnv removes a variable.
func (db *DB) DeleteEnv(ctx context.Context, projectID, key string) error {
	res, err := db.Writer.ExecContext(ctx, storesql.DeleteEnv, projectID, key)
	if err != nil {
		return fmt.Errorf("delete environment variable: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("environment variable %q: %w", key, libra.ErrNotFound)
	}
	return nil
}
