package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// There is no RescueOrphans here, unlike SQLite's store: with several nodes
// on one database a running job is not an orphan just because this node
// starts. Handing back a dead node's jobs is the lease reaper's work (see
// lease.go); RescueOwnOrphans only takes what this node's id left behind.

// RescueOwnOrphans hands back what an earlier process with this node's id
// left: its leases (released, the epoch moved on) and the jobs River still
// shows running under its id. A NODE_ID is unique among live processes, so
// those belong to a dead one; without this, a node restarted under a fixed
// NODE_ID would make them look alive again to the reaper.
func (db *DB) RescueOwnOrphans(ctx context.Context, node, queue string) (int64, error) {
	var rescued int64
	err := db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE deployments SET lease_node = '', lease_expires_at = NULL,
			lease_epoch = lease_epoch + 1 WHERE lease_node = $1`, node); err != nil {
			return fmt.Errorf("release own orphaned leases: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
			WHERE state = 'running' AND queue = $2 AND attempted_by[array_length(attempted_by, 1)] = $1`, node, queue)
		if err != nil {
			return fmt.Errorf("rescue own orphaned jobs: %w", err)
		}
		rescued = tag.RowsAffected()
		return nil
	})
	return rescued, err
}

// FailLostDeployments fails deployments that are not final although their
// job is (see storesql.FailLost). Safe with other nodes running: it only
// looks at jobs that are already finished.
func (db *DB) FailLostDeployments(ctx context.Context) (int64, error) {
	tag, err := db.Pool.Exec(ctx, pg(storesql.FailLost), storesql.Micros(libra.Now()))
	if err != nil {
		return 0, fmt.Errorf("fail lost deployments: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Requeue resets a failed deployment to queued and, in the same transaction,
// lets retry make its job available again; see sqlite.DB.Requeue.
func (db *DB) Requeue(ctx context.Context, id string, retry func(ctx context.Context, tx pgx.Tx, jobID int64) error) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var jobID sql.NullInt64
		var status, org, month string
		var refunded bool
		err := tx.QueryRow(ctx, `SELECT job_id, status, org_id, quota_month, quota_refunded FROM deployments
			WHERE id = $1 FOR UPDATE`, id).Scan(&jobID, &status, &org, &month, &refunded)
		if noRows(err) {
			return libra.Errorf(libra.CodeDeploymentNotFound, "no deployment %q", id)
		}
		if err != nil {
			return fmt.Errorf("select deployment: %w", err)
		}
		if status != string(libra.StatusFailed) || !jobID.Valid {
			return libra.Errorf(libra.CodeConflict, "deployment %s is %s; only failed deployments can be re-queued", id, status)
		}
		if err := resetDeployment(ctx, tx, id, org, month, refunded); err != nil {
			return err
		}
		return retry(ctx, tx, jobID.Int64)
	})
}

func resetDeployment(ctx context.Context, tx pgx.Tx, id, org, month string, refunded bool) error {
	steps, err := storesql.EncodeSteps(libra.NewStepStates())
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE deployments SET status = 'queued', current_step = '', progress = 0, steps = $1,
		error = '', finished_at = NULL, quota_refunded = false, reclaims = 0, cancel_requested_at = NULL WHERE id = $2`, steps, id); err != nil {
		return fmt.Errorf("reset deployment: %w", err)
	}
	if !refunded {
		return nil
	}
	// Charged again without checking the limit: re-queueing is an admin
	// action, and the deployment was accepted within it once.
	if _, err := tx.Exec(ctx, `INSERT INTO quota_usage (org_id, month, used) VALUES ($1, $2, 1)
		ON CONFLICT (org_id, month) DO UPDATE SET used = quota_usage.used + 1`, org, month); err != nil {
		return fmt.Errorf("charge quota: %w", err)
	}
	return nil
}
