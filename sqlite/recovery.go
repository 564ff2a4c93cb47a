package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// RescueOrphans hands back jobs that a dead process left "running".
//
// River has no worker heartbeat: without this, a job whose process was
// SIGKILLed stays running until River's rescuer fires, past the job deadline.
// On SQLite only one `serve` works a data directory (it holds a lock file), so
// at its start-up every running job in its queue is an orphan.
func (db *DB) RescueOrphans(ctx context.Context, queue string) (int64, error) {
	// Their leases are orphans too: given up with the epoch moved on, so
	// the rescued jobs start at once instead of waiting for them to expire.
	if _, err := db.Writer.ExecContext(ctx, `UPDATE deployments SET lease_node = '', lease_expires_at = NULL,
		lease_epoch = lease_epoch + 1 WHERE lease_node != ''`); err != nil {
		return 0, fmt.Errorf("release orphaned leases: %w", err)
	}
	res, err := db.Writer.ExecContext(ctx,
		`UPDATE river_job SET state = 'available', scheduled_at = datetime('now', 'subsec')
		 WHERE state = 'running' AND queue = ?`, queue)
	if err != nil {
		return 0, fmt.Errorf("rescue orphaned jobs: %w", err)
	}
	return res.RowsAffected()
}

// FailLostDeployments fails deployments that are not final although their
// job is: a process that died between finishing the job and saving the
// deployment, or a job removed by hand. Nothing is left "in progress" forever.
func (db *DB) FailLostDeployments(ctx context.Context) (int64, error) {
	res, err := db.Writer.ExecContext(ctx, storesql.FailLost, micros(libra.Now()))
	if err != nil {
		return 0, fmt.Errorf("fail lost deployments: %w", err)
	}
	return res.RowsAffected()
}

// Requeue resets a failed deployment to queued and, in the same transaction,
// lets retry make its job available again. Quota refunded on failure is
// charged again: the deployment is going to run after all. It is an admin
// action, so the org's limit is not checked.
func (db *DB) Requeue(ctx context.Context, id string, retry func(ctx context.Context, tx *sql.Tx, jobID int64) error) error {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var jobID sql.NullInt64
	var status, org, month string
	var refunded bool
	err = tx.QueryRowContext(ctx,
		`SELECT job_id, status, org_id, quota_month, quota_refunded FROM deployments WHERE id = ?`, id).
		Scan(&jobID, &status, &org, &month, &refunded)
	if errors.Is(err, sql.ErrNoRows) {
		return libra.Errorf(libra.CodeDeploymentNotFound, "no deployment %q", id)
	}
	if err != nil {
		return fmt.Errorf("select deployment: %w", err)
	}
	if status != string(libra.StatusFailed) || !jobID.Valid {
		return libra.Errorf(libra.CodeConflict, "deployment %s is %s; only failed deployments can be re-queued", id, status)
	}
	steps, err := json.Marshal(libra.NewStepStates())
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE deployments SET status = 'queued', current_step = '', progress = 0, steps = ?, error = '',
		   finished_at = NULL, quota_refunded = 0, reclaims = 0, cancel_requested_at = NULL WHERE id = ?`, string(steps), id); err != nil {
		return fmt.Errorf("reset deployment: %w", err)
	}
	if refunded {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO quota_usage (org_id, month, used) VALUES (?, ?, 1)
			 ON CONFLICT (org_id, month) DO UPDATE SET used = used + 1`, org, month); err != nil {
			return fmt.Errorf("charge quota: %w", err)
		}
	}
	if err := retry(ctx, tx, jobID.Int64); err != nil {
		return err
	}
	return tx.Commit()
}

// RunIntervals returns when each deployment started and finished, for
// measuring how many ran at once.
func (db *DB) RunIntervals(ctx context.Context) ([][2]int64, error) {
	rows, err := db.readRows(ctx,
		`SELECT started_at, finished_at FROM deployments WHERE started_at IS NOT NULL AND finished_at IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("select intervals: %w", err)
	}
	defer rows.Close()
	var out [][2]int64
	for rows.Next() {
		var iv [2]int64
		if err := rows.Scan(&iv[0], &iv[1]); err != nil {
			return nil, err
		}
		out = append(out, iv)
	}
	return out, rows.Err()
}
