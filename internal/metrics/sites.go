package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	siteRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "libra_site_requests_total",
		Help: "Site requests answered, by status class (2xx, 3xx, 4xx, 5xx).",
	}, []string{"class"})
	siteBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "libra_site_response_bytes_total",
		Help: "Body bytes sent in answer to site requests.",
	})
)

// siteClasses are resolved once: SiteServed runs on the site fast path,
// which must not allocate, and a label lookup per request would.
var siteClasses [6]prometheus.Counter

func init() {
	for i, name := range []string{"1xx", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		siteClasses[i] = siteRequests.WithLabelValues(name)
	}
}

// SiteServed counts one site response: its status class and body bytes.
// It does not allocate.
func SiteServed(status int, bytes int64) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 5 // a handler's nonsense status is the server's fault
	}
	siteClasses[class].Inc()
	if bytes > 0 {
		siteBytes.Add(float64(bytes))
	}
}
