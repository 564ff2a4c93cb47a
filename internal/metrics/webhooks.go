package metrics

import "github.com/prometheus/client_golang/prometheus"

var webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "libra_webhook_deliveries_total",
	Help: "Webhook delivery attempts by outcome: succeeded, retried (failed, another attempt is due), " +
		"failed (no attempt left) or disabled (410 Gone stopped the endpoint).",
}, []string{"outcome"})

func init() {
	Registry.MustRegister(webhookDeliveries)
	for _, o := range []string{"succeeded", "failed", "retried", "disabled"} {
		webhookDeliveries.WithLabelValues(o)
	}
}

// WebhookDelivery counts one delivery attempt's outcome.
func WebhookDelivery(outcome string) { webhookDeliveries.WithLabelValues(outcome).Inc() }
