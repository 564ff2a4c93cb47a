package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// SetBuildKey records the digest of the deployment's build inputs.
func (db *DB) SetBuildKey(ctx context.Context, id, key string) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error { return storesql.SetBuildKey(ctx, leaseTx{tx: tx}, id, key) })
}

// BuiltOutput returns the newest completed deployment of the project built
// from key, other than exclude.
func (db *DB) BuiltOutput(ctx context.Context, projectID, key, exclude string) (string, string, error) {
	var id, manifest string
	err := db.Pool.QueryRow(ctx, pg(storesql.BuiltOutput), projectID, key, exclude).Scan(&id, &manifest)
	if noRows(err) {
		return "", "", fmt.Errorf("build output of project %s: %w", projectID, libra.ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("select build output: %w", err)
	}
	return id, manifest, nil
}
