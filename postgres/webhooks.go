package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// EnqueueDeliveriesFunc inserts webhook deliveries' queue jobs inside tx;
// package webhook provides it.
type EnqueueDeliveriesFunc func(ctx context.Context, tx pgx.Tx, deliveryIDs []string) error

// Query gives storesql's outbox the many-row reads it needs.
func (t leaseTx) Query(ctx context.Context, query string, args ...any) (storesql.Rows, func(), error) {
	rows, err := t.tx.Query(ctx, storesql.PostgresDialect.SQL(query), args...)
	if err != nil {
		return nil, nil, err
	}
	return rows, rows.Close, nil
}

func (db *DB) enqueueDeliveries() storesql.EnqueueDeliveries {
	if db.EnqueueDeliveries == nil {
		return nil
	}
	return func(ctx context.Context, tx storesql.Tx, ids []string) error {
		return db.EnqueueDeliveries(ctx, tx.(leaseTx).tx, ids)
	}
}

// outbox records ev's deliveries inside tx (see storesql.Outbox).
func (db *DB) outbox(ctx context.Context, tx pgx.Tx, ev storesql.OutboxEvent) error {
	return storesql.Outbox(ctx, leaseTx{tx: tx}, ev, db.enqueueDeliveries())
}

// outboxIf is outbox when listeners is above 0.
func (db *DB) outboxIf(ctx context.Context, tx pgx.Tx, listeners int, ev storesql.OutboxEvent) error {
	return storesql.OutboxIf(ctx, leaseTx{tx: tx}, listeners, ev, db.enqueueDeliveries())
}

// CreateWebhook stores an endpoint. The project row's lock makes the count
// and the insert one step for nodes racing on the same project.
func (db *DB) CreateWebhook(ctx context.Context, w libra.Webhook) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := lockProject(ctx, tx, w.ProjectID); err != nil {
			return err
		}
		return storesql.CreateWebhook(ctx, leaseTx{tx: tx}, w)
	})
}

// Webhooks returns a project's endpoints, oldest first.
func (db *DB) Webhooks(ctx context.Context, projectID string) ([]libra.Webhook, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.SelectWebhooks), projectID)
	if err != nil {
		return nil, fmt.Errorf("select webhooks: %w", err)
	}
	return collect(rows, storesql.ScanWebhook)
}

// WebhookByID returns one endpoint of a project.
func (db *DB) WebhookByID(ctx context.Context, projectID, id string) (*libra.Webhook, error) {
	w, err := storesql.ScanWebhook(db.Pool.QueryRow(ctx, pg(storesql.SelectWebhook), id, projectID, projectID))
	if noRows(err) {
		return nil, fmt.Errorf("webhook %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select webhook: %w", err)
	}
	return &w, nil
}

// DeleteWebhook removes an endpoint and (ON DELETE CASCADE) its deliveries.
func (db *DB) DeleteWebhook(ctx context.Context, projectID, id string) error {
	tag, err := db.Pool.Exec(ctx, pg(storesql.DeleteWebhook), projectID, id)
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("webhook %q: %w", id, libra.ErrNotFound)
	}
	return nil
}

// WebhookDeliveries returns an endpoint's latest deliveries, newest first.
func (db *DB) WebhookDeliveries(ctx context.Context, webhookID string, limit int) ([]libra.WebhookDelivery, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.SelectDeliveries), webhookID, limit)
	if err != nil {
		return nil, fmt.Errorf("select deliveries: %w", err)
	}
	return collect(rows, storesql.ScanDelivery)
}

// WebhookDelivery returns one delivery.
func (db *DB) WebhookDelivery(ctx context.Context, id string) (*libra.WebhookDelivery, error) {
	d, err := storesql.ScanDelivery(db.Pool.QueryRow(ctx, pg(storesql.SelectDelivery), id))
	if noRows(err) {
		return nil, fmt.Errorf("delivery %q: %w", id, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select delivery: %w", err)
	}
	return &d, nil
}

// RecordWebhookAttempt saves an attempt's outcome.
func (db *DB) RecordWebhookAttempt(ctx context.Context, a libra.WebhookAttempt) error {
	return db.inLeaseTx(ctx, func(tx leaseTx) error { return storesql.RecordWebhookAttempt(ctx, tx, a) })
}

// RedeliverWebhook restarts a finished delivery with a new job.
func (db *DB) RedeliverWebhook(ctx context.Context, webhookID, deliveryID string) (*libra.WebhookDelivery, error) {
	var out *libra.WebhookDelivery
	err := db.inLeaseTx(ctx, func(tx leaseTx) error {
		d, err := storesql.Redeliver(ctx, tx, webhookID, deliveryID, db.enqueueDeliveries())
		out = d
		return err
	})
	return out, err
}

// AnnounceFinal: see storesql.FinalAnnouncer. Without deliveries (a leaseTx
// made outside inTx) it announces nothing.
func (t leaseTx) AnnounceFinal(ctx context.Context, id string) error {
	if t.deliveries == nil {
		return nil
	}
	return storesql.AnnounceFinal(ctx, t, id, t.deliveries)
}
