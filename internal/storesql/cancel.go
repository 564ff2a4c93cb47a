package storesql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
)

// Cancellation's queries (see libra.CancelStore). Lease queries' spelling:
// run them through a Tx, which expands {now}.
const (
	// MarkCancelRequested records the request on a deployment that may
	// still be cancelled, and returns what decides how: being an UPDATE,
	// it also locks the row in PostgreSQL, so AcquireLease, Publish and
	// the reaper wait for this transaction.
	MarkCancelRequested = `UPDATE deployments SET cancel_requested_at = coalesce(cancel_requested_at, ?)
		WHERE id = ? AND status IN ('queued', 'in_progress') AND manifest = ''
		RETURNING status, steps, current_step, lease_node, coalesce(lease_expires_at, 0), {now}, job_id, org_id,
		  quota_month, quota_refunded`
	SelectCancelRequested = `SELECT cancel_requested_at FROM deployments WHERE id = ?`
	// CancelNow ends a deployment that no node runs; the epoch moves on,
	// fencing a worker that still thinks it holds the lease.
	CancelNow = `UPDATE deployments SET status = 'cancelled', current_step = '', error = ?, finished_at = ?, steps = ?,
		quota_refunded = ?, lease_node = '', lease_expires_at = NULL, lease_epoch = lease_epoch + 1 WHERE id = ?`
	// CancelledMessage is the error of every cancelled deployment, and of
	// the step it stopped in.
	CancelledMessage = "cancelled"
)

// cancelTarget is a row of MarkCancelRequested.
type cancelTarget struct {
	status, steps, step, leaseNode string
	leaseExpires, now              int64
	job                            sql.NullInt64
	org, month                     string
	refunded                       bool
}

// RequestCancel is libra.CancelStore.RequestCancel inside tx. A status
// other than StatusCancelled means a node runs the deployment: the store
// announces the request to it (WatchCancels).
func RequestCancel(ctx context.Context, tx Tx, id string) (libra.Status, error) {
	var t cancelTarget
	err := tx.QueryRow(ctx, MarkCancelRequested, Micros(libra.Now()), id).Scan(&t.status, &t.steps, &t.step,
		&t.leaseNode, &t.leaseExpires, &t.now, &t.job, &t.org, &t.month, &t.refunded)
	if tx.NoRows(err) {
		return "", cancelRefused(ctx, tx, id)
	}
	if err != nil {
		return "", fmt.Errorf("record cancel request: %w", err)
	}
	if t.leaseNode != "" && t.leaseExpires >= t.now {
		return libra.Status(t.status), nil // its node ends it
	}
	return libra.StatusCancelled, cancelNow(ctx, tx, id, t)
}

// cancelRefused says why MarkCancelRequested matched no row.
func cancelRefused(ctx context.Context, tx Tx, id string) error {
	var status, manifest string
	err := tx.QueryRow(ctx, `SELECT status, manifest FROM deployments WHERE id = ?`, id).Scan(&status, &manifest)
	if tx.NoRows(err) {
		return fmt.Errorf("deployment %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("select deployment: %w", err)
	}
	if manifest != "" && !libra.Status(status).Final() {
		status = string(libra.StatusCompleted) // published: it is completing
	}
	return &libra.Error{Code: libra.CodeDeploymentFinished,
		Message: fmt.Sprintf("deployment %s is %s: only a queued or running deployment can be cancelled", id, status),
		Details: map[string]any{"status": status}}
}

// cancelNow ends a deployment no node runs: cancelled, its job cancelled,
// its quota given back unless its build began.
func cancelNow(ctx context.Context, tx Tx, id string, t cancelTarget) error {
	var steps libra.StepStates
	if err := json.Unmarshal([]byte(t.steps), &steps); err != nil {
		return fmt.Errorf("decode steps of %s: %w", id, err)
	}
	refund := !t.refunded && !steps.BuildBegan()
	now := libra.Now()
	if st, ok := steps[libra.Step(t.step)]; ok && st.Status == libra.StepInProgress {
		steps[libra.Step(t.step)] = libra.StepState{Status: libra.StepFailed, Timestamp: &now, Error: CancelledMessage}
	}
	encoded, err := EncodeSteps(steps)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, CancelNow, CancelledMessage, Micros(now), encoded, t.refunded || refund, id); err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	if err := endJob(ctx, tx, t.job, "cancelled"); err != nil {
		return err
	}
	msg := "deployment cancelled: no node was running it"
	if refund {
		if _, err := tx.Exec(ctx, RefundOne, t.org, t.month); err != nil {
			return fmt.Errorf("refund quota of %s: %w", id, err)
		}
		msg += "; quota given back"
	}
	if err := reapLog(ctx, tx, id, "warn", msg); err != nil {
		return err
	}
	return announceFinal(ctx, tx, id)
}

// CancelRequested reads whether id's cancel was requested.
func CancelRequested(row Scanner, noRows func(error) bool, id string) (bool, error) {
	var at sql.NullInt64
	err := row.Scan(&at)
	if noRows(err) {
		return false, fmt.Errorf("deployment %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("select cancel request: %w", err)
	}
	return at.Valid, nil
}

// PublishRefused says why a Publish matched no row: the deployment is
// gone, or its cancel was requested (libra.ErrCancelled).
func PublishRefused(ctx context.Context, tx Tx, id string) error {
	requested, err := CancelRequested(tx.QueryRow(ctx, SelectCancelRequested, id), tx.NoRows, id)
	if err != nil {
		return err
	}
	if requested {
		return fmt.Errorf("publish %s: %w", id, libra.ErrCancelled)
	}
	return fmt.Errorf("deployment %q: %w", id, libra.ErrNotFound)
}

// reapCancelled cancels, inside tx, a deployment the reaper just fenced if
// its cancel had been requested: dispatching it again would only start a
// run to stop it, and dead-lettering would call it failed. One that had
// published is left to be dispatched again, which completes it.
func reapCancelled(ctx context.Context, tx Tx, id string) (bool, error) {
	requested, err := CancelRequested(tx.QueryRow(ctx, SelectCancelRequested, id), tx.NoRows, id)
	if err != nil || !requested {
		return false, err
	}
	status, err := RequestCancel(ctx, tx, id)
	if err != nil && libra.ErrorCode(err) == libra.CodeDeploymentFinished {
		return false, nil
	}
	return status == libra.StatusCancelled, err
}
