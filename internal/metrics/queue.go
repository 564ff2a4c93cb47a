package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueCounter reads the number of jobs in each River state from the
// database; it is the store's, since the queue is shared by every node.
type QueueCounter func(ctx context.Context) (map[string]int64, error)

// queueScrapeTimeout bounds the count a scrape waits for: a busy database
// must not pile up scrapes.
const queueScrapeTimeout = 2 * time.Second

var queueDepthDesc = prometheus.NewDesc("libra_queue_jobs",
	"Jobs in the deployment queue's table, by River state, read at scrape time.", []string{"state"}, nil)

var queueErrorDesc = prometheus.NewDesc("libra_queue_scrape_error",
	"1 when the last scrape could not count the queue's jobs.", nil, nil)

// riverStates are always reported, zero when empty, so that series do not
// vanish when a state drains.
var riverStates = []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"}

type queueCollector struct{ count QueueCounter }

func (q queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueErrorDesc
}

func (q queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueScrapeTimeout)
	defer cancel()
	counts, err := q.count(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueErrorDesc, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueErrorDesc, prometheus.GaugeValue, 0)
	for _, state := range riverStates {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(counts[state]), state)
	}
}

// registeredQueue is the collector RegisterQueue added last.
var registeredQueue struct {
	sync.Mutex
	c prometheus.Collector
}

// RegisterQueue adds the queue depth, counted by count at each scrape. A
// second call (a service started again in the same process) replaces the
// first rather than failing on the duplicate.
func RegisterQueue(count QueueCounter) error {
	registeredQueue.Lock()
	defer registeredQueue.Unlock()
	if registeredQueue.c != nil {
		Registry.Unregister(registeredQueue.c)
	}
	c := queueCollector{count: count}
	if err := Registry.Register(c); err != nil {
		return fmt.Errorf("register queue depth: %w", err)
	}
	registeredQueue.c = c
	return nil
}
