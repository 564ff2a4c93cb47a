package main

import (
	"fmt"
	"log/slog"
	"strconv"

	"github.com/riverqueue/river"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/webhook"
)

// webhookWorkers caps concurrent delivery attempts per node: each waits at
// most webhook.AttemptTimeout on a receiver.
const webhookWorkers = 10

// webhookConfig is the delivery settings.
type webhookConfig struct {
	// RetryScale multiplies the retry schedule (WEBHOOK_RETRY_SCALE,
	// default 1): tests shorten hours to milliseconds with it.
	RetryScale float64
	// AllowPrivate lets endpoints resolve to loopback and private
	// addresses (WEBHOOK_ALLOW_PRIVATE=1): for tests only, since it lets
	// any org make this service POST to its own network.
	AllowPrivate bool
	err          error
}

func loadWebhookConfig() webhookConfig {
	wc := webhookConfig{RetryScale: 1, AllowPrivate: env("WEBHOOK_ALLOW_PRIVATE", "") == "1"}
	if v := env("WEBHOOK_RETRY_SCALE", ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1000 {
			wc.err = fmt.Errorf("WEBHOOK_RETRY_SCALE must be a number above 0 and at most 1000, not %q", v)
		}
		wc.RetryScale = f
	}
	return wc
}

// webhookQueue is the delivery worker's River queue, worked beside the
// deployments on the same client.
func webhookQueue(wc webhookConfig, store libra.WebhookStore, logger *slog.Logger) queue.ExtraQueue {
	w := &webhook.Worker{Store: store, Sender: webhook.NewSender(wc.AllowPrivate), RetryScale: wc.RetryScale,
		Logger: logger.With("component", "webhooks")}
	return queue.ExtraQueue{Name: webhook.QueueName, MaxWorkers: webhookWorkers, Register: func(ws *river.Workers) error {
		return river.AddWorkerSafely(ws, w)
	}}
}
