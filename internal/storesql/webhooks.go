package storesql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
)

// Webhook queries, the same text in both dialects.
const (
	WebhookColumns = `id, project_id, url, events, secret, created_at, disabled_at, disabled_reason`
	InsertWebhook  = `INSERT INTO webhooks (id, project_id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)`
	CountWebhooks  = `SELECT count(*) FROM webhooks WHERE project_id = ?`
	SelectWebhooks = `SELECT ` + WebhookColumns + ` FROM webhooks WHERE project_id = ? ORDER BY created_at, id`
	// SelectWebhook with '' as the project finds the id in any project (the
	// delivery worker).
	SelectWebhook = `SELECT ` + WebhookColumns + ` FROM webhooks WHERE id = ? AND (project_id = ? OR ? = '')`
	DeleteWebhook = `DELETE FROM webhooks WHERE project_id = ? AND id = ?`
	// ActiveWebhooks is the outbox's first, and in the common case only,
	// statement: an index lookup that finds nothing for a project without
	// endpoints.
	ActiveWebhooks = `SELECT id, events FROM webhooks WHERE project_id = ? AND disabled_at IS NULL`
	InsertDelivery = `INSERT INTO webhook_deliveries (id, webhook_id, event, deployment_id, dedupe, payload, created_at, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id, dedupe) DO NOTHING`

	DeliveryColumns = `id, webhook_id, event, deployment_id, payload, status, attempts, response_code, last_error,
		durations_ms, created_at, last_attempt_at, next_attempt_at`
	SelectDeliveries = `SELECT ` + DeliveryColumns + ` FROM webhook_deliveries WHERE webhook_id = ? ORDER BY seq DESC LIMIT ?`
	SelectDelivery   = `SELECT ` + DeliveryColumns + ` FROM webhook_deliveries WHERE id = ?`
	RecordAttempt    = `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, response_code = ?, last_error = ?,
		durations_ms = ?, last_attempt_at = ?, next_attempt_at = ? WHERE id = ?`
	DisableWebhook = `UPDATE webhooks SET disabled_at = ?, disabled_reason = ?
		WHERE disabled_at IS NULL AND id = (SELECT webhook_id FROM webhook_deliveries WHERE id = ?)`
	// RestartDelivery restarts a finished delivery of a live endpoint; the
	// caller tells "no such delivery" from "not now" by reading it.
	RestartDelivery = `UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?
		WHERE id = ? AND webhook_id = ? AND status != 'pending'
		  AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_id AND w.disabled_at IS NULL)`
)

// ScanWebhook reads a row of WebhookColumns.
func ScanWebhook(row Scanner) (libra.Webhook, error) {
	var w libra.Webhook
	var events string
	var created int64
	var disabled sql.NullInt64
	if err := row.Scan(&w.ID, &w.ProjectID, &w.URL, &events, &w.Secret, &created, &disabled, &w.DisabledReason); err != nil {
		return w, err
	}
	w.Events = SplitEvents(events)
	w.CreatedAt, w.DisabledAt = FromMicros(created), FromOptMicros(disabled)
	return w, nil
}

// SplitEvents parses the events column; nil for "every event".
func SplitEvents(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// ScanDelivery reads a row of DeliveryColumns.
func ScanDelivery(row Scanner) (libra.WebhookDelivery, error) {
	var d libra.WebhookDelivery
	var payload, durations string
	var created int64
	var last, next sql.NullInt64
	if err := row.Scan(&d.ID, &d.WebhookID, &d.Event, &d.DeploymentID, &payload, &d.Status, &d.Attempts,
		&d.ResponseCode, &d.LastError, &durations, &created, &last, &next); err != nil {
		return d, err
	}
	d.Payload = []byte(payload)
	if err := json.Unmarshal([]byte(durations), &d.DurationsMs); err != nil {
		return d, fmt.Errorf("decode durations of delivery %s: %w", d.ID, err)
	}
	d.CreatedAt, d.LastAttemptAt, d.NextAttemptAt = FromMicros(created), FromOptMicros(last), FromOptMicros(next)
	return d, nil
}

// NewWebhookID returns an endpoint id.
func NewWebhookID() string { return "wh_" + strings.ToLower(rand.Text()) }

// NewDeliveryID returns a message id, the webhook-id header.
func NewDeliveryID() string { return "msg_" + strings.ToLower(rand.Text()) }

// QueryTx is a transaction that can also return many rows. Rows must be
// closed by the caller through the returned function.
type QueryTx interface {
	Tx
	Query(ctx context.Context, query string, args ...any) (Rows, func(), error)
}

// EnqueueDeliveries inserts the deliveries' queue jobs inside the
// transaction.
type EnqueueDeliveries func(ctx context.Context, tx Tx, deliveryIDs []string) error

// OutboxEvent is a change that webhooks announce.
type OutboxEvent struct {
	Event        string
	ProjectID    string
	DeploymentID string
	// Dedupe makes the event one message per endpoint: the same key twice
	// records nothing the second time. Empty: always a new message.
	Dedupe string
}

// Outbox records the deliveries of ev to the project's endpoints that want
// it, and their jobs, inside tx: they commit or roll back with the change
// itself. A project without endpoints costs one indexed lookup.
func Outbox(ctx context.Context, tx QueryTx, ev OutboxEvent, enqueue EnqueueDeliveries) error {
	hooks, err := subscribed(ctx, tx, ev)
	if err != nil || len(hooks) == 0 {
		return err
	}
	d, err := ScanDeployment(tx.QueryRow(ctx, SelectDeployment, ev.DeploymentID))
	if err != nil {
		return fmt.Errorf("outbox: select deployment %s: %w", ev.DeploymentID, err)
	}
	now := libra.Now()
	payload, err := libra.NewWebhookPayload(ev.Event, d, now)
	if err != nil {
		return err
	}
	ids, err := insertDeliveries(ctx, tx, ev, hooks, string(payload), Micros(now))
	if err != nil || len(ids) == 0 {
		return err
	}
	if enqueue == nil {
		return fmt.Errorf("outbox: %w", ErrNoEnqueue)
	}
	if err := enqueue(ctx, tx, ids); err != nil {
		return fmt.Errorf("outbox: enqueue deliveries: %w", err)
	}
	return nil
}

// subscribed returns the ids of the project's live endpoints that want ev.
func subscribed(ctx context.Context, tx QueryTx, ev OutboxEvent) ([]string, error) {
	rows, done, err := tx.Query(ctx, ActiveWebhooks, ev.ProjectID)
	if err != nil {
		return nil, fmt.Errorf("outbox: select webhooks: %w", err)
	}
	defer done()
	var ids []string
	for rows.Next() {
		var id, events string
		if err := rows.Scan(&id, &events); err != nil {
			return nil, fmt.Errorf("outbox: scan webhook: %w", err)
		}
		if (libra.Webhook{Events: SplitEvents(events)}).Wants(ev.Event) {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

func insertDeliveries(ctx context.Context, tx Tx, ev OutboxEvent, hooks []string, payload string, now int64) ([]string, error) {
	var ids []string
	for _, hook := range hooks {
		id := NewDeliveryID()
		dedupe := ev.Dedupe
		if dedupe == "" {
			dedupe = id
		}
		n, err := tx.Exec(ctx, InsertDelivery, id, hook, ev.Event, ev.DeploymentID, dedupe, payload, now, now)
		if err != nil {
			return nil, fmt.Errorf("outbox: insert delivery: %w", err)
		}
		if n > 0 {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// FinalDedupe keys a final-status event: once per attempt of a deployment,
// so a deployment requeued after failing announces its new end too.
func FinalDedupe(event, deploymentID string, attempt int) string {
	return fmt.Sprintf("%s:%s:%d", event, deploymentID, attempt)
}

// ReturningListeners is a RETURNING clause counting the live endpoints of
// the written row's project (projectColumn names it, e.g.
// "deployments.project_id"): the write that may announce an event says
// whether anyone listens, so a project without endpoints pays no extra
// statement on the hot paths.
func ReturningListeners(projectColumn string) string {
	return " RETURNING (SELECT count(*) FROM webhooks w WHERE w.project_id = " + projectColumn + " AND w.disabled_at IS NULL)"
}

// OutboxIf is Outbox when listeners (from ReturningListeners) is above 0.
func OutboxIf(ctx context.Context, tx QueryTx, listeners int, ev OutboxEvent, enqueue EnqueueDeliveries) error {
	if listeners == 0 {
		return nil
	}
	return Outbox(ctx, tx, ev, enqueue)
}

// HasWebhooks is the cheap test a batch makes once per project before it
// asks for the outbox per deployment.
const HasWebhooks = `SELECT count(*) FROM webhooks WHERE project_id = ? AND disabled_at IS NULL`

// CreateWebhook inserts w unless its project is at MaxWebhooksPerProject.
// The count and the insert share tx, which the caller makes serialise with
// other writers of the project (SQLite's single writer; a row lock on
// PostgreSQL).
func CreateWebhook(ctx context.Context, tx Tx, w libra.Webhook) error {
	var n int
	if err := tx.QueryRow(ctx, CountWebhooks, w.ProjectID).Scan(&n); err != nil {
		return fmt.Errorf("count webhooks: %w", err)
	}
	if n >= libra.MaxWebhooksPerProject {
		return libra.Errorf(libra.CodeConflict, "project %s already has %d webhooks, the most it may have", w.ProjectID, n)
	}
	if _, err := tx.Exec(ctx, InsertWebhook, w.ID, w.ProjectID, w.URL, strings.Join(w.Events, ","), w.Secret,
		Micros(w.CreatedAt)); err != nil {
		return fmt.Errorf("insert webhook: %w", err)
	}
	return nil
}

// RecordWebhookAttempt saves an attempt on its delivery, appending its
// duration, and disables the endpoint when the attempt says so.
func RecordWebhookAttempt(ctx context.Context, tx Tx, a libra.WebhookAttempt) error {
	d, err := ScanDelivery(tx.QueryRow(ctx, SelectDelivery, a.DeliveryID))
	if tx.NoRows(err) {
		return fmt.Errorf("delivery %s: %w", a.DeliveryID, libra.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("select delivery: %w", err)
	}
	durations, err := json.Marshal(append(d.DurationsMs, a.Duration.Milliseconds()))
	if err != nil {
		return fmt.Errorf("encode durations: %w", err)
	}
	if _, err := tx.Exec(ctx, RecordAttempt, a.Status, a.ResponseCode, a.Error, string(durations), Micros(a.At),
		OptMicros(a.NextAt), a.DeliveryID); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	if a.Disable != "" {
		if _, err := tx.Exec(ctx, DisableWebhook, Micros(a.At), a.Disable, a.DeliveryID); err != nil {
			return fmt.Errorf("disable webhook: %w", err)
		}
	}
	return nil
}

// Redeliver restarts a delivery and enqueues its new job inside tx.
func Redeliver(ctx context.Context, tx Tx, webhookID, deliveryID string, enqueue EnqueueDeliveries) (*libra.WebhookDelivery, error) {
	n, err := tx.Exec(ctx, RestartDelivery, Micros(libra.Now()), deliveryID, webhookID)
	if err != nil {
		return nil, fmt.Errorf("redeliver: %w", err)
	}
	d, err := ScanDelivery(tx.QueryRow(ctx, SelectDelivery, deliveryID))
	if tx.NoRows(err) || err == nil && d.WebhookID != webhookID {
		return nil, fmt.Errorf("delivery %s of webhook %s: %w", deliveryID, webhookID, libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select delivery: %w", err)
	}
	if n == 0 {
		return nil, libra.Errorf(libra.CodeConflict, "delivery %s is %s or its endpoint is disabled; only a finished delivery to a live endpoint can be sent again", deliveryID, d.Status)
	}
	if enqueue == nil {
		return nil, ErrNoEnqueue
	}
	if err := enqueue(ctx, tx, []string{deliveryID}); err != nil {
		return nil, fmt.Errorf("enqueue redelivery: %w", err)
	}
	return &d, nil
}

// FinalAnnouncer is a Tx that can announce, to the project's webhooks, a
// deployment that a path other than UpdateDeployment made final: a cancel
// no node runs, the reaper's dead letter. Like EventLogger, it is optional:
// a Tx without it announces nothing.
type FinalAnnouncer interface {
	AnnounceFinal(ctx context.Context, id string) error
}

// announceFinal announces id's final status inside tx when tx can.
func announceFinal(ctx context.Context, tx Tx, id string) error {
	if a, ok := tx.(FinalAnnouncer); ok {
		return a.AnnounceFinal(ctx, id)
	}
	return nil
}

// AnnounceFinal records, inside tx, the deliveries of the final-status
// event of deployment id, once per attempt like UpdateDeployment's.
func AnnounceFinal(ctx context.Context, tx QueryTx, id string, enqueue EnqueueDeliveries) error {
	d, err := ScanDeployment(tx.QueryRow(ctx, SelectDeployment, id))
	if err != nil {
		return fmt.Errorf("announce %s: select deployment: %w", id, err)
	}
	ev := libra.FinalEvent(d.Status)
	if ev == "" {
		return nil
	}
	return Outbox(ctx, tx, OutboxEvent{Event: ev, ProjectID: d.ProjectID, DeploymentID: id,
		Dedupe: FinalDedupe(ev, id, d.Attempt)}, enqueue)
}
