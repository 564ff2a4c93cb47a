package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// Cancel requests reach the node running the deployment by NOTIFY on
// cancelChannel, sent in the request's transaction (so only once it
// commits) and heard by every node's cancel listener. NOTIFY has no replay;
// the runner's poll of CancelRequested covers what a dropped listener
// missed.

const (
	cancelChannel = "libra_cancel"
	// cancelListenerPrefix + the node's id is the cancel listener's
	// application_name in pg_stat_activity.
	cancelListenerPrefix = "libra-deploy-cancel-listener-"
)

// RequestCancel: see libra.CancelStore.
func (db *DB) RequestCancel(ctx context.Context, id string) (libra.Status, error) {
	var status libra.Status
	err := db.inLeaseTx(ctx, func(tx leaseTx) error {
		var err error
		status, err = storesql.RequestCancel(ctx, tx, id)
		if err != nil || status == libra.StatusCancelled {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify(?, ?)`, cancelChannel, id); err != nil {
			return fmt.Errorf("notify cancel of %s: %w", id, err)
		}
		return nil
	})
	return status, err
}

// CancelRequested: see libra.CancelStore.
func (db *DB) CancelRequested(ctx context.Context, id string) (bool, error) {
	row := db.Pool.QueryRow(ctx, pg(storesql.SelectCancelRequested), id)
	return storesql.CancelRequested(row, noRows, id)
}

// WatchCancels: see libra.CancelStore. It keeps one LISTEN connection up,
// reconnecting with backoff, and returns when ctx ends.
func (db *DB) WatchCancels(ctx context.Context, fn func(id string)) error {
	log := db.log.With("component", "cancel-events")
	wait := reconnectMin
	for ctx.Err() == nil {
		listened, err := db.cancelSession(ctx, fn, log)
		if ctx.Err() != nil {
			break
		}
		if listened {
			wait = reconnectMin
		}
		log.Warn("cancel events: LISTEN connection lost; reconnecting", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, reconnectMax)
	}
	return nil
}

// cancelSession runs one LISTEN connection until it fails.
func (db *DB) cancelSession(ctx context.Context, fn func(string), log *slog.Logger) (listened bool, err error) {
	cfg := db.Pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = cancelListenerPrefix + db.nodeID
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "LISTEN "+cancelChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	log.Debug("cancel events: listening")
	for {
		wctx, cancel := context.WithTimeout(ctx, listenerPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			fn(n.Payload)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			if err := ping(ctx, conn); err != nil {
				return true, err
			}
		default:
			return true, fmt.Errorf("wait for notification: %w", err)
		}
	}
}
