package main_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// BenchmarkPostgresAccept measures accepted deployments per second on
// PostgreSQL with one node and with three, all on one throwaway database and
// one versitygw bucket, clients spread round-robin over the nodes. Every node
// shares this machine's 2 cores, so it also prints the CPU each node and
// PostgreSQL spent per accepted deployment (the builds the nodes ran
// meanwhile included): on separate machines, that, not the rate here, says
// how the cluster scales. The CPU figures wait for every deployment to
// finish, so that each configuration is charged for the same work.
func BenchmarkPostgresAccept(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) { benchAccept(b, nodes) })
	}
}

func benchAccept(b *testing.B, nodes int) {
	dbURL := pgtest.Database(b, pgTemplate)
	gw := s3test.Start(b)
	env := append([]string{"POSTGRES_URL=" + dbURL, "RATE_LIMIT_RPS=1000000", "RATE_LIMIT_BURST=1000000", "LOG_LEVEL=warn"}, gw.Env("accept")...)
	servers := make([]*server, nodes)
	for i := range servers {
		servers[i] = startServer(b, env...)
	}
	tok := pgAdmin(b, servers[0], dbURL, "token", "create", "--org", "bench", "--user", "u")
	pgAdmin(b, servers[0], dbURL, "project", "create", "--org", "bench", "--id", "site")
	const clients, total = 32, 3000
	cpu0, pg0 := nodeCPU(b, servers), postgresCPU(b, dbURL)
	start := time.Now()
	lat := acceptConcurrently(b, servers, tok, clients, total)
	elapsed := time.Since(start)
	waitAllFinished(b, dbURL, total, 5*time.Minute)
	all := time.Since(start)
	cpu, pg := nodeCPU(b, servers), postgresCPU(b, dbURL)-pg0
	rate := float64(total) / elapsed.Seconds()
	b.ReportMetric(rate, "accepted/s")
	b.ReportMetric(ms(pct(lat, 50)), "accept-p50-ms")
	b.ReportMetric(pg/total*1000, "postgres-CPU-ms/deployment")
	fmt.Printf("\nPostgreSQL, %d node(s), %d clients, %d deployments:\n  accepted/s %.0f, accept latency p50 %.1f ms, p99 %.1f ms; all finished after %s\n",
		nodes, clients, total, rate, ms(pct(lat, 50)), ms(pct(lat, 99)), all.Round(time.Millisecond))
	fmt.Println("  CPU per deployment, accepted and run to the end (the same work whatever the node count):")
	for i := range servers {
		fmt.Printf("    node %d: %.2f ms\n", i+1, (cpu[i]-cpu0[i])/total*1000)
	}
	fmt.Printf("    PostgreSQL: %.2f ms\n", pg/total*1000)
}

// waitAllFinished waits until n deployments have reached a final state, so
// that CPU figures cover the same work in every configuration.
func waitAllFinished(b *testing.B, dbURL string, n int, limit time.Duration) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		var done int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM deployments WHERE status IN ('completed', 'failed')`).Scan(&done); err != nil {
			b.Fatal(err)
		}
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deployments finished after %s", done, n, limit)
		}
	}
}

// nodeCPU returns each server's CPU seconds so far.
func nodeCPU(b *testing.B, servers []*server) []float64 {
	out := make([]float64, len(servers))
	for i, s := range servers {
		out[i] = cpuSeconds(b, s.cmd.Process.Pid)
	}
	return out
}

// acceptConcurrently posts total deployments from clients goroutines,
// round-robin over the servers, and returns each one's latency.
func acceptConcurrently(b *testing.B, servers []*server, tok string, clients, total int) []time.Duration {
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
				req, _ := http.NewRequest("POST", servers[i%len(servers)].url+"/deploy", strings.NewReader(body))
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
