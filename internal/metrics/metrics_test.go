package metrics

import (
	"context"
	"errors"
	"fmt"
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

func TestQueueDepthCollector(t *testing.T) {
	tests := []struct {
		name      string
		counts    map[string]int64
		err       error
		wantError float64
		wantAvail float64
	}{
		{"counted", map[string]int64{"available": 3, "running": 1}, nil, 0, 3},
		{"database down", nil, errors.New("database is locked"), 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Registered twice on purpose: a restart in one process
			// replaces the collector.
			for range 2 {
				if err := RegisterQueue(func(context.Context) (map[string]int64, error) { return tc.counts, tc.err }); err != nil {
					t.Fatal(err)
				}
			}
			rec := httptest.NewRecorder()
			Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			body := rec.Body.String()
			wantLine := fmt.Sprintf("libra_queue_scrape_error %v\n", tc.wantError)
			if !strings.Contains(body, wantLine) {
				t.Errorf("lacks %q", wantLine)
			}
			avail := fmt.Sprintf("libra_queue_jobs{state=\"available\"} %v\n", tc.wantAvail)
			if tc.err == nil && !strings.Contains(body, avail) {
				t.Errorf("lacks %q", avail)
			}
			if tc.err != nil && strings.Contains(body, "libra_queue_jobs{") {
				t.Errorf("queue depths reported although counting failed")
			}
		})
	}
}
