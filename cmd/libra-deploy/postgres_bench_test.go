package main_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

// BenchmarkPostgresAccept drives one real `serve` on PostgreSQL with 32
// concurrent clients and prints accepted deployments/s, accept latency, and
// the CPU-seconds per accepted deployment of the node and of PostgreSQL
// (this machine's 2 cores serve both, and the builds the accepts start).
func BenchmarkPostgresAccept(b *testing.B) {
	dbURL := pgtest.Database(b, pgTemplate)
	s := startServer(b, "POSTGRES_URL="+dbURL, "RATE_LIMIT_RPS=1000000", "RATE_LIMIT_BURST=1000000", "LOG_LEVEL=warn")
	tok := pgAdmin(b, s, dbURL, "token", "create", "--org", "bench", "--user", "u")
	pgAdmin(b, s, dbURL, "project", "create", "--org", "bench", "--id", "site")
	const clients, total = 32, 3000
	node0, pg0 := cpuSeconds(b, s.cmd.Process.Pid), postgresCPU(b, dbURL)
	start := time.Now()
	lat := acceptConcurrently(b, s, tok, clients, total)
	elapsed := time.Since(start)
	node, pg := cpuSeconds(b, s.cmd.Process.Pid)-node0, postgresCPU(b, dbURL)-pg0
	rate := float64(total) / elapsed.Seconds()
	b.ReportMetric(rate, "accepted/s")
	b.ReportMetric(ms(pct(lat, 50)), "accept-p50-ms")
	b.ReportMetric(node/total*1000, "node-CPU-ms/accept")
	b.ReportMetric(pg/total*1000, "postgres-CPU-ms/accept")
	fmt.Printf(`
PostgreSQL, 1 node, %d clients, %d deployments:
  accepted/s %.0f, accept latency p50 %.1f ms, p99 %.1f ms
  CPU per accepted deployment: node %.2f ms, PostgreSQL %.2f ms (includes the builds it started meanwhile)
`, clients, total, rate, ms(pct(lat, 50)), ms(pct(lat, 99)), node/total*1000, pg/total*1000)
}

// acceptConcurrently posts total deployments from clients goroutines and
// returns each one's latency.
func acceptConcurrently(b *testing.B, s *server, tok string, clients, total int) []time.Duration {
	var next atomic.Int64
	lat := make([]time.Duration, total)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < total; i = int(next.Add(1) - 1) {
				body := fmt.Sprintf(`{"projectId":"site","orgId":"bench","userId":"u","initFiles":[{"path":"index.html","content":"<h1>%d</h1>"}]}`, i)
				req, _ := http.NewRequest("POST", s.url+"/deploy", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 202 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return lat
}

// postgresCPU sums the CPU time of the PostgreSQL processes serving the
// cluster that dbURL's socket directory belongs to.
func postgresCPU(b *testing.B, dbURL string) float64 {
	u, err := url.Parse(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	dir := u.Query().Get("host")
	procs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, p := range procs {
		if isPostgresOf(p.Name(), dir) {
			sum += cpuSeconds(b, atoi(p.Name()))
		}
	}
	return sum
}

// isPostgresOf reports whether process pid is the postmaster of dir's
// cluster or one of its children (backends have the postmaster as parent).
func isPostgresOf(pid, dir string) bool {
	cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		return false
	}
	if strings.Contains(string(cmdline), dir) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil || !strings.HasPrefix(string(cmdline), "postgres:") {
		return false
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	parent, err := os.ReadFile("/proc/" + f[1] + "/cmdline")
	return err == nil && strings.Contains(string(parent), dir)
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}
