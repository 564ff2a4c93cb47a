package main_test

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkKillToCompletion: three nodes on one PostgreSQL; five times, a
// deployment with a 2 s build starts on some node, that node is killed
// with SIGKILL and restarted, and the time from the kill to the
// deployment's completion on another node is taken. Reports the p50 and
// the worst of the five (LEASE_DURATION at its default, 8 s).
//
//	go test ./cmd/libra-deploy -run '^$' -bench KillToCompletion -benchtime 1x -v
func BenchmarkKillToCompletion(b *testing.B) {
	c := startLeaseCluster(b, 3)
	var took []time.Duration
	for b.Loop() {
		for round := range 5 {
			took = append(took, killOnce(c, round))
		}
	}
	slices.Sort(took)
	p50, worst := took[len(took)/2], took[len(took)-1]
	b.Logf("kill -9 -> completion on another node over %d kills: p50 %s, max %s, all %v",
		len(took), p50.Round(time.Millisecond), worst.Round(time.Millisecond), took)
	b.ReportMetric(p50.Seconds(), "p50-s")
	b.ReportMetric(worst.Seconds(), "max-s")
}

func killOnce(c *leaseCluster, round int) time.Duration {
	c.t.Helper()
	ids := c.deployAll([]map[string]any{{"projectId": "app", "orgId": "acme", "userId": "user-acme",
		"initFiles": slowBuild(2000, "round")}})
	holder := c.waitHolder(60 * time.Second)
	victim := c.node(holder)
	killed := time.Now()
	victim.kill()
	c.waitAllFinal(60 * time.Second)
	var status string
	var finished int64
	c.query(`SELECT status, finished_at FROM deployments WHERE id = $1`, []any{ids[0]}, &status, &finished)
	if status != "completed" {
		c.t.Fatalf("round %d: deployment %s", round, status)
	}
	victim.start()
	return time.UnixMicro(finished).Sub(killed)
}
