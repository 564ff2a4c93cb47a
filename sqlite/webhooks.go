package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// EnqueueDeliveriesFunc inserts webhook deliveries' queue jobs inside tx;
// package webhook provides it.
type EnqueueDeliveriesFunc func(ctx context.Context, tx *sql.Tx, deliveryIDs []string) error

// Query gives storesql's outbox the many-row reads it needs.
func (t leaseTx) Query(ctx context.Context, query string, args ...any) (storesql.Rows, func(), error) {
	rows, err := t.tx.QueryContext(ctx, storesql.SQLiteDialect.SQL(query), args...)
	if err != nil {
		return nil, nil, err
	}
	return rows, func() { rows.Close() }, nil
}

// enqueueDeliveries adapts EnqueueDeliveries to storesql's transaction.
func (db *DB) enqueueDeliveries() storesql.EnqueueDeliveries {
	if db.EnqueueDeliveries == nil {
		return nil
	}
	return func(ctx context.Context, tx storesql.Tx, ids []string) error {
		return db.EnqueueDeliveries(ctx, tx.(leaseTx).tx, ids)
	}
}

// outbox records ev's deliveries inside tx (see storesql.Outbox).
func (db *DB) outbox(ctx context.Context, tx *sql.Tx, ev storesql.OutboxEvent) error {
	return storesql.Outbox(ctx, leaseTx{tx: tx}, ev, db.enqueueDeliveries())
}

// outboxIf is outbox when listeners is above 0.
func (db *DB) outboxIf(ctx context.Context, tx *sql.Tx, listeners int, ev storesql.OutboxEvent) error {
	return storesql.OutboxIf(ctx, leaseTx{tx: tx}, listeners, ev, db.enqueueDeliveries())
}

// CreateWebhook stores an endpoint; SQLite's single writer serialises the
// count with the insert.
func (db *DB) CreateWebhook(ctx context.Context, w libra.Webhook) error {
	return db.inTx(ctx, func(tx leaseTx) error { return storesql.CreateWebhook(ctx, tx, w) })
}

// Webhooks returns a project's endpoints, oldest first.
func (db *DB) Webhooks(ctx context.Context, projectID string) ([]libra.Webhook, error) {
	rows, err := db.readRows(ctx, storesql.SelectWebhooks, projectID)
	if err != nil {
		return nil, fmt.Errorf("select webhooks: %w", err)
	}
	defer rows.Close()
	return storesql.Collect(rows, storesql.ScanWebhook)
}

// WebhookByID returns one endpoint of a project.
func (db *DB) WebhookByID(ctx context.Context, projectID, id string) (*libra.Webhook, error) {
	w, err := storesql.ScanWebhook(db.readRow(ctx, storesql.SelectWebhook, id, projectID, projectID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("webhook %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select webhook: %w", err)
	}
	return &w, nil
}

// DeleteWebhook removes an endpoint; its deliveries go with it (ON DELETE
// CASCADE), and their pending jobs find nothing to send.
func (db *DB) DeleteWebhook(ctx context.Context, projectID, id string) error {
	res, err := db.Writer.ExecContext(ctx, storesql.DeleteWebhook, projectID, id)
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("webhook %q: %w", id, libra.ErrNotFound)
	}
	return nil
}

// WebhookDeliveries returns an endpoint's latest deliveries, newest first.
func (db *DB) WebhookDeliveries(ctx context.Context, webhookID string, limit int) ([]libra.WebhookDelivery, error) {
	rows, err := db.readRows(ctx, storesql.SelectDeliveries, webhookID, limit)
	if err != nil {
		return nil, fmt.Errorf("select deliveries: %w", err)
	}
	defer rows.Close()
	return storesql.Collect(rows, storesql.ScanDelivery)
}

// WebhookDelivery returns one delivery.
func (db *DB) WebhookDelivery(ctx context.Context, id string) (*libra.WebhookDelivery, error) {
	d, err := storesql.ScanDelivery(db.readRow(ctx, storesql.SelectDelivery, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("delivery %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select delivery: %w", err)
	}
	return &d, nil
}

// RecordWebhookAttempt saves an attempt's outcome.
func (db *DB) RecordWebhookAttempt(ctx context.Context, a libra.WebhookAttempt) error {
	return db.inTx(ctx, func(tx leaseTx) error { return storesql.RecordWebhookAttempt(ctx, tx, a) })
}

// RedeliverWebhook restarts a finished delivery with a new job.
func (db *DB) RedeliverWebhook(ctx context.Context, webhookID, deliveryID string) (*libra.WebhookDelivery, error) {
	var out *libra.WebhookDelivery
	err := db.inTx(ctx, func(tx leaseTx) error {
		d, err := storesql.Redeliver(ctx, tx, webhookID, deliveryID, db.enqueueDeliveries())
		out = d
		return err
	})
	return out, err
}

// announceCreated records deployment.created for a batch of accepted
// deployments. One count per project decides whether the outbox is asked at
// all, so a batch of a project without endpoints adds one indexed lookup.
func (db *DB) announceCreated(ctx context.Context, tx *sql.Tx, accepted []*createRequest) error {
	hooked := map[string]bool{}
	for _, r := range accepted {
		has, seen := hooked[r.d.ProjectID]
		if !seen {
			var n int
			if err := tx.QueryRowContext(ctx, storesql.HasWebhooks, r.d.ProjectID).Scan(&n); err != nil {
				return fmt.Errorf("count webhooks: %w", err)
			}
			has = n > 0
			hooked[r.d.ProjectID] = has
		}
		if !has {
			continue
		}
		if err := db.outbox(ctx, tx, storesql.OutboxEvent{Event: libra.EventDeploymentCreated, ProjectID: r.d.ProjectID,
			DeploymentID: r.d.ID}); err != nil {
			return err
		}
	}
	return nil
}

// AnnounceFinal: see storesql.FinalAnnouncer. Without deliveries (a leaseTx
// made outside inTx) it announces nothing.
func (t leaseTx) AnnounceFinal(ctx context.Context, id string) error {
	if t.deliveries == nil {
		return nil
	}
	return storesql.AnnounceFinal(ctx, t, id, t.deliveries)
}
