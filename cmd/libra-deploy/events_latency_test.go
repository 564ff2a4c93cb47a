package main_test

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// lineLatencies returns, for each build line a follower received live
// (printed after it connected), the time from the build printing it (the
// ms timestamp the line carries) to the client reading its event.
func lineLatencies(events []streamEvent, connected time.Time) []time.Duration {
	var out []time.Duration
	for _, e := range events {
		var i int
		var at int64
		if e.Type != "log" {
			continue
		}
		if _, err := fmt.Sscanf(e.str("message"), "chatty %d at %d", &i, &at); err != nil {
			continue
		}
		printed := time.UnixMilli(at)
		if printed.After(connected) {
			out = append(out, e.At.Sub(printed))
		}
	}
	slices.Sort(out)
	return out
}

// followBuild follows deployment id on url from its first event to done
// and returns the events and the live lines' latencies.
func followBuild(t testing.TB, url, tok, id string) ([]streamEvent, []time.Duration) {
	t.Helper()
	c, bad := openEvents(t, url, tok, id, "")
	if bad != nil {
		t.Fatalf("open: %d %s", bad.status, bad.body)
	}
	defer c.close()
	connected := time.Now()
	events := c.readUntil(t, 3*time.Minute, isDone)
	return events, lineLatencies(events, connected)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) < 50 {
		b.Fatalf("only %d lines received live", len(lat))
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.Logf("%d lines: p50 %s, p99 %s, max %s", len(lat), p50, p99, lat[len(lat)-1])
}

// BenchmarkEventLatencySQLite: a build prints 200 lines, one every 10 ms;
// how long each takes from the sandbox to a follower's SSE client.
func BenchmarkEventLatencySQLite(b *testing.B) {
	s := startServer(b)
	tok := s.setup("acme", "chatty")
	var all []time.Duration
	for range b.N {
		id := deployFiles(s, tok, "acme", "chatty", chattyBuild(200, 10, false)).str("deploymentId")
		_, lat := followBuild(b, s.url, tok, id)
		all = append(all, lat...)
	}
	slices.Sort(all)
	reportLatency(b, all)
}

// BenchmarkEventLatencyPostgresTwoNodes: the same with the build on one
// node and the follower on the other, woken by NOTIFY.
func BenchmarkEventLatencyPostgresTwoNodes(b *testing.B) {
	c := startLeaseCluster(b, 2)
	var all []time.Duration
	for range b.N {
		id := c.nodes[0].deploy(c.tok, map[string]any{"projectId": "app", "orgId": "acme", "userId": "user-acme",
			"initFiles": chattyBuild(200, 10, false)}).str("deploymentId")
		follower := c.otherNode(id)
		_, lat := followBuild(b, follower.url, c.tok, id)
		all = append(all, lat...)
	}
	slices.Sort(all)
	reportLatency(b, all)
}

// otherNode waits until a node leases deployment id and returns another.
func (c *leaseCluster) otherNode(id string) *server {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var node string
		c.query(`SELECT lease_node FROM deployments WHERE id = $1`, []any{id}, &node)
		if node != "" {
			for i, s := range c.nodes {
				if fmt.Sprintf("node-%d", i) != node {
					return s
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("deployment %s was not picked up within a minute", id)
	return nil
}

// On PostgreSQL, a client on one node follows a build running on another:
// every event once, in order, done last, and live lines arrive within
// milliseconds (NOTIFY), not at the 2 s safety poll.
func TestEventsAcrossNodesPostgres(t *testing.T) {
	c := startLeaseCluster(t, 2)
	id := c.nodes[0].deploy(c.tok, map[string]any{"projectId": "app", "orgId": "acme", "userId": "user-acme",
		"initFiles": chattyBuild(80, 25, false)}).str("deploymentId")
	follower := c.otherNode(id)
	events, lat := followBuild(t, follower.url, c.tok, id)
	checkGapFree(t, events, 1)
	if d := events[len(events)-1]; d.str("status") != "completed" {
		t.Fatalf("done: %+v", d.Data)
	}
	if got := chattyLines(eventLogMessages(events)); !slices.Equal(got, seq(80)) {
		t.Fatalf("build lines: %v", got)
	}
	if len(lat) < 20 {
		t.Fatalf("only %d lines received live", len(lat))
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	t.Logf("%d live lines across nodes: p50 %s, p99 %s", len(lat), p50, p99)
	if p50 > time.Second {
		t.Fatalf("p50 %s: lines wait for the poll, not NOTIFY", p50)
	}
	replay := readAll(t, c.nodes[0].url, c.tok, id, "")
	if !sameEvents(replay, events) {
		t.Fatal("the building node replays other events than the follower received")
	}
}
