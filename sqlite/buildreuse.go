package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// SetBuildKey records the digest of the deployment's build inputs.
func (db *DB) SetBuildKey(ctx context.Context, id, key string) error {
	return db.inTx(ctx, func(tx leaseTx) error { return storesql.SetBuildKey(ctx, tx, id, key) })
}

// BuiltOutput returns the newest completed deployment of the project built
// from key, other than exclude.
func (db *DB) BuiltOutput(ctx context.Context, projectID, key, exclude string) (string, string, error) {
	var id, manifest string
	err := db.readRow(ctx, storesql.BuiltOutput, projectID, key, exclude).Scan(&id, &manifest)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("build output of project %s: %w", projectID, libra.ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("select build output: %w", err)
	}
	return id, manifest, nil
}
