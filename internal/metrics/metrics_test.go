package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// SiteServed runs on the site fast path, which must not allocate.
func TestSiteServedDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(1000, func() { SiteServed(200, 512) })
	t.Logf("SiteServed: %v allocs/op", allocs)
	if allocs != 0 {
		t.Fatalf("SiteServed allocates %v times per call", allocs)
	}
}

func TestSiteServedClasses(t *testing.T) {
	for _, c := range []struct {
		status int
		class  string
	}{{200, "2xx"}, {204, "2xx"}, {304, "3xx"}, {404, "4xx"}, {503, "5xx"}, {0, "5xx"}, {999, "5xx"}, {101, "1xx"}} {
		before := testutil.ToFloat64(siteRequests.WithLabelValues(c.class))
		bytesBefore := testutil.ToFloat64(siteBytes)
		SiteServed(c.status, 10)
		if got := testutil.ToFloat64(siteRequests.WithLabelValues(c.class)) - before; got != 1 {
			t.Errorf("status %d: %s grew by %v, want 1", c.status, c.class, got)
		}
		if got := testutil.ToFloat64(siteBytes) - bytesBefore; got != 10 {
			t.Errorf("status %d: bytes grew by %v, want 10", c.status, got)
		}
	}
}

func TestHandlerServesTextFormat(t *testing.T) {
	DeploymentAccepted()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"libra_deployments_accepted_total ", "go_goroutines ", `libra_build_cache_lookups_total{result="miss"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
