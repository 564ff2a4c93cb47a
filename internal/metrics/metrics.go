// Package metrics holds the service's Prometheus metrics. They live in one
// process-wide registry: counters are per process by nature (Prometheus
// sums them across nodes), and every figure that is state, like the queue's
// depth, is read from the store at scrape time instead.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every metric below plus the Go runtime's and the process's.
var Registry = prometheus.NewRegistry()

// Buckets for deployment-scale durations: from 10 ms (a validate) to 20
// minutes (a slow build past the default deadline).
var durationBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200}

var (
	accepted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "libra_deployments_accepted_total",
		Help: "Deployments accepted by the API (queued).",
	})
	finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "libra_deployments_finished_total",
		Help: "Deployments that reached a final status, by that status.",
	}, []string{"status"})
	stepDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "libra_deployment_step_duration_seconds",
		Help:    "Time one attempt spent in a deployment step, by step and outcome.",
		Buckets: durationBuckets,
	}, []string{"step", "outcome"})
	pickupLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "libra_deployment_pickup_latency_seconds",
		Help:    "Time from a deployment's acceptance to its first attempt starting.",
		Buckets: durationBuckets,
	})
	buildCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "libra_build_cache_lookups_total",
		Help: "Build cache (node_modules) lookups, by result: hit or miss.",
	}, []string{"result"})
	buildsReused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "libra_builds_reused_total",
		Help: "Deployments that published an earlier build of the same inputs instead of building (BUILD_REUSE).",
	})
)

func init() {
	Registry.MustRegister(accepted, finished, stepDuration, pickupLatency, buildCache, buildsReused,
		siteRequests, siteBytes,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Zero series exist from the start, so a dashboard's rate() has a
	// baseline before the first event.
	for _, r := range []string{"hit", "miss"} {
		buildCache.WithLabelValues(r)
	}
	for _, s := range []string{"completed", "failed", "cancelled"} {
		finished.WithLabelValues(s)
	}
}

// Handler serves Registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
}

// DeploymentAccepted counts one deployment queued by the API.
func DeploymentAccepted() { accepted.Inc() }

// DeploymentFinished counts a deployment that reached the final status.
func DeploymentFinished(status string) { finished.WithLabelValues(status).Inc() }

// StepDone records how long one step of one attempt took.
func StepDone(step string, d time.Duration, failed bool) {
	outcome := "ok"
	if failed {
		outcome = "error"
	}
	stepDuration.WithLabelValues(step, outcome).Observe(d.Seconds())
}

// PickedUp records the wait between acceptance and the first attempt.
func PickedUp(wait time.Duration) { pickupLatency.Observe(max(wait, 0).Seconds()) }

// BuildReused counts one deployment that published an earlier build.
func BuildReused() { buildsReused.Inc() }

// BuildCacheLookup counts one node_modules cache lookup.
func BuildCacheLookup(hit bool) {
	if hit {
		buildCache.WithLabelValues("hit").Inc()
		return
	}
	buildCache.WithLabelValues("miss").Inc()
}
