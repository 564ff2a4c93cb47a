package storesql

import (
	"context"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
)

// Project environment queries (libra.EnvStore).
const (
	ListEnv = `SELECT key, value, secret, updated_at FROM project_env WHERE project_id = ? ORDER BY key`
	// LockEnvProject reads the project row; PostgreSQL appends FOR UPDATE
	// (EnvProjectLock) so that two nodes setting variables of one project
	// at once count one after the other, and the cap holds.
	LockEnvProject = `SELECT 1 FROM projects WHERE id = ?`
	CountOtherEnv  = `SELECT count(*) FROM project_env WHERE project_id = ? AND key <> ?`
	UpsertEnv      = `INSERT INTO project_env (project_id, key, value, secret, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (project_id, key) DO UPDATE SET value = excluded.value, secret = excluded.secret, updated_at = excluded.updated_at`
	DeleteEnv = `DELETE FROM project_env WHERE project_id = ? AND key = ?`
	// DeleteProjectEnv goes with the project (DeleteProjectSteps).
	DeleteProjectEnv = `DELETE FROM project_env WHERE project_id = ?`
)

// PutEnv sets a variable inside tx; lockProject is LockEnvProject in the
// store's spelling.
func PutEnv(ctx context.Context, tx Tx, lockProject, projectID string, v libra.EnvVar) error {
	var one int
	err := tx.QueryRow(ctx, lockProject, projectID).Scan(&one)
	if tx.NoRows(err) {
		return fmt.Errorf("project %q: %w", projectID, libra.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("select project: %w", err)
	}
	var others int
	if err := tx.QueryRow(ctx, CountOtherEnv, projectID, v.Key).Scan(&others); err != nil {
		return fmt.Errorf("count environment variables: %w", err)
	}
	if others >= libra.MaxEnvVars {
		return libra.Errorf(libra.CodeValidation, "project %s already has %d environment variables, the most allowed; delete one first", projectID, others)
	}
	if _, err := tx.Exec(ctx, UpsertEnv, projectID, v.Key, v.Value, Flag(v.Secret), Micros(v.UpdatedAt)); err != nil {
		return fmt.Errorf("set environment variable: %w", err)
	}
	return nil
}

// ScanEnv reads a row of ListEnv.
func ScanEnv(row Scanner) (libra.EnvVar, error) {
	var v libra.EnvVar
	var secret, updated int64
	if err := row.Scan(&v.Key, &v.Value, &secret, &updated); err != nil {
		return libra.EnvVar{}, err
	}
	v.Secret, v.UpdatedAt = secret != 0, FromMicros(updated)
	return v, nil
}
