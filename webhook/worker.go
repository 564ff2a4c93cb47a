package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// QueueName is the River queue deliveries run in, apart from deployments so
// that a slow receiver never holds a build slot.
const QueueName = "webhooks"

// DeliveryArgs is a delivery job's payload: only the delivery's id, whose
// row holds the message and its attempts.
type DeliveryArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind is River's name for this job type.
func (DeliveryArgs) Kind() string { return "webhook_delivery" }

// InsertOpts puts every delivery job in QueueName. River's own attempts
// only cover failures to reach the database; the delivery's schedule is
// counted in its row.
func (DeliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueName, MaxAttempts: 10}
}

// Schedule is the Standard Webhooks retry schedule: the delay before each
// attempt, the first immediate. Its length is the number of attempts.
var Schedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// MaxRetryAfter caps how long a receiver's Retry-After may hold a delivery.
const MaxRetryAfter = time.Hour

// Worker sends deliveries. Any node's worker may take any delivery: the
// message is in the store, and its webhook-id lets the receiver drop a
// repeat if a node dies between sending and recording.
type Worker struct {
	river.WorkerDefaults[DeliveryArgs]
	Store  libra.WebhookStore
	Sender *Sender
	// RetryScale multiplies Schedule (WEBHOOK_RETRY_SCALE); tests shorten
	// hours to milliseconds with it. 0 means 1.
	RetryScale float64
	Logger     *slog.Logger
}

// Timeout leaves room for the attempt and the two store writes around it.
func (w *Worker) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return AttemptTimeout + 20*time.Second
}

// Work makes one attempt and records it; a retry is a snooze until the
// schedule's next slot.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	d, hook, err := w.load(ctx, job.Args.DeliveryID)
	if err != nil || d == nil {
		return err
	}
	now := libra.Now()
	if hook.DisabledAt != nil {
		metrics.WebhookDelivery("failed")
		return w.Store.RecordWebhookAttempt(ctx, libra.WebhookAttempt{DeliveryID: d.ID, At: now,
			Status: libra.DeliveryFailed, Error: "endpoint disabled: " + hook.DisabledReason})
	}
	res := w.Sender.Send(ctx, Message{URL: hook.URL, Secret: hook.Secret, ID: d.ID, Body: d.Payload})
	a, delay := w.judge(d, res, now)
	if err := w.Store.RecordWebhookAttempt(ctx, a); err != nil {
		return fmt.Errorf("record attempt of %s: %w", d.ID, err)
	}
	w.Logger.Info("webhook attempt", "delivery", d.ID, "webhook", hook.ID, "event", d.Event, "code", res.Code,
		"status", a.Status, "attempt", d.Attempts+1, "error", a.Error)
	if a.Status == libra.DeliveryPending {
		return river.JobSnooze(delay)
	}
	return nil
}

// load returns a pending delivery and its endpoint, or nil when there is
// nothing left to send (the endpoint was deleted, or the delivery is done).
func (w *Worker) load(ctx context.Context, id string) (*libra.WebhookDelivery, *libra.Webhook, error) {
	d, err := w.Store.WebhookDelivery(ctx, id)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load delivery %s: %w", id, err)
	}
	if d.Status != libra.DeliveryPending {
		return nil, nil, nil
	}
	hook, err := w.Store.WebhookByID(ctx, "", d.WebhookID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load webhook %s: %w", d.WebhookID, err)
	}
	return d, hook, nil
}

// judge turns an attempt's result into the delivery's next state, counting
// it in the metrics, and says how long until the next attempt.
func (w *Worker) judge(d *libra.WebhookDelivery, res Result, now time.Time) (libra.WebhookAttempt, time.Duration) {
	a := libra.WebhookAttempt{DeliveryID: d.ID, At: now, Duration: res.Duration, ResponseCode: res.Code}
	if res.Err != nil {
		a.Error = shorten(res.Err.Error())
	}
	attempt := d.Attempts + 1
	switch {
	case res.OK():
		a.Status = libra.DeliverySucceeded
		metrics.WebhookDelivery("succeeded")
		return a, 0
	case res.Code == http.StatusGone:
		a.Status, a.Disable = libra.DeliveryFailed, "the endpoint answered 410 Gone"
		metrics.WebhookDelivery("disabled")
		return a, 0
	case attempt >= len(Schedule):
		a.Status = libra.DeliveryFailed
		metrics.WebhookDelivery("failed")
		return a, 0
	}
	delay := w.scaled(Schedule[attempt])
	delay = max(delay, min(res.RetryAfter, MaxRetryAfter))
	next := now.Add(delay)
	a.Status, a.NextAt = libra.DeliveryPending, &next
	metrics.WebhookDelivery("retried")
	return a, delay
}

func (w *Worker) scaled(d time.Duration) time.Duration {
	if w.RetryScale <= 0 {
		return d
	}
	return time.Duration(float64(d) * w.RetryScale)
}

// Enqueuer returns the function the stores call inside their transactions
// to insert delivery jobs (sqlite.DB.EnqueueDeliveries,
// postgres.DB.EnqueueDeliveries).
func Enqueuer[TTx any](client *river.Client[TTx]) func(ctx context.Context, tx TTx, ids []string) error {
	return func(ctx context.Context, tx TTx, ids []string) error {
		params := make([]river.InsertManyParams, len(ids))
		for i, id := range ids {
			params[i] = river.InsertManyParams{Args: DeliveryArgs{DeliveryID: id}}
		}
		if _, err := client.InsertManyTx(ctx, tx, params); err != nil {
			return fmt.Errorf("insert delivery jobs: %w", err)
		}
		return nil
	}
}
