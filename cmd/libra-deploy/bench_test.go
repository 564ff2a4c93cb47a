package main_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkService drives a real `serve` over HTTP and prints the figures
// issue 2 asks for: accepted deployments/s and request latency under load,
// queue pickup latency, the end-to-end time of a 10-file static deploy, and
// resident memory when idle. Run it with `make bench` (-benchtime 1x: each
// phase sizes itself).
func BenchmarkService(b *testing.B) {
	s := startServer(b, append([]string{"RATE_LIMIT_RPS=1000000", "RATE_LIMIT_BURST=1000000", "LOG_LEVEL=warn"}, strings.Fields(os.Getenv("BENCH_SERVER_ENV"))...)...)
	tok := s.setup("bench", "site")
	time.Sleep(2 * time.Second)
	idleRSS := rssMiB(b, s.cmd.Process.Pid)

	// Phase 1: pickup and end-to-end latency on an idle queue, one at a time.
	var e2e []time.Duration
	for i := 0; i < 30; i++ {
		body := staticSite("bench", "site", 10)
		body["initFiles"].([]map[string]any)[0]["content"] = fmt.Sprintf("<h1>run %d</h1>", i)
		start := time.Now()
		r := s.deploy(tok, body)
		id := r.str("deploymentId")
		for {
			st := s.do("GET", "/deploy-status?id="+id, nil)
			if st.str("status") == "completed" {
				break
			}
			if st.str("status") == "failed" {
				b.Fatalf("deployment failed: %s", st.body)
			}
			time.Sleep(2 * time.Millisecond)
		}
		site := s.do("GET", "/", nil, "Host", s.siteHost(id))
		if site.status != 200 || !strings.Contains(string(site.body), fmt.Sprintf("run %d", i)) {
			b.Fatalf("site: %d %s", site.status, site.body)
		}
		e2e = append(e2e, time.Since(start))
	}
	pickup := pickupLatencies(b, s)

	// Phase 2: sustained accepts, 32 clients, distinct content per request.
	const clients, total = 32, 6000
	var next atomic.Int64
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	cpu0 := cpuSeconds(b, s.cmd.Process.Pid)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				body := fmt.Sprintf(`{"projectId":"site","orgId":"bench","userId":"user-bench","initFiles":[{"path":"index.html","content":"<h1>%d</h1>"}]}`, i)
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
	elapsed := time.Since(start)
	serverCPU := cpuSeconds(b, s.cmd.Process.Pid) - cpu0
	rate := float64(total) / elapsed.Seconds()
	loadRSS := rssMiB(b, s.cmd.Process.Pid)

	b.ReportMetric(rate, "accepted/s")
	b.ReportMetric(ms(pct(lat, 50)), "accept-p50-ms")
	b.ReportMetric(ms(pct(lat, 99)), "accept-p99-ms")
	b.ReportMetric(ms(pct(pickup, 50)), "pickup-p50-ms")
	b.ReportMetric(ms(pct(e2e, 50)), "e2e-10file-p50-ms")
	b.ReportMetric(idleRSS, "idle-RSS-MiB")
	fmt.Fprintf(os.Stderr, `
libra-deploy service benchmark (%s)
  POST /deploy, %d clients, %d requests: %.0f accepted/s; latency p50 %.2f ms, p99 %.2f ms
  queue pickup (accepted -> worker started), idle queue, n=%d: p50 %.1f ms, p99 %.1f ms
  10-file static deploy, POST -> completed -> site answers, n=%d: p50 %.1f ms, p99 %.1f ms
  server CPU during the accept burst: %.2f cores of 2 (the load generator shares the machine)
  RSS: idle %.1f MiB, after the accept burst %.1f MiB
`, time.Now().Format(time.RFC3339), clients, total, rate, ms(pct(lat, 50)), ms(pct(lat, 99)),
		len(pickup), ms(pct(pickup, 50)), ms(pct(pickup, 99)), len(e2e), ms(pct(e2e, 50)), ms(pct(e2e, 99)), serverCPU/elapsed.Seconds(), idleRSS, loadRSS)
}

func pickupLatencies(b *testing.B, s *server) []time.Duration {
	db, err := sql.Open("sqlite", "file:"+s.dataDir+"/libra.db?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT started_at - created_at FROM deployments WHERE started_at IS NOT NULL")
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var us int64
		if err := rows.Scan(&us); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Duration(us)*time.Microsecond)
	}
	return out
}

func rssMiB(b testing.TB, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%f", &kb)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuSeconds is the user+system CPU time a process has used.
func cpuSeconds(b testing.TB, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var utime, stime float64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}
