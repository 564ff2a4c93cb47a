package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

// leaseCluster is real serve nodes on one throwaway PostgreSQL database. They
// share one artifact directory (each node's data-dir/artifacts is a link to
// it) until the S3 artifact store is merged: what one node stores, another
// serves and builds on.
type leaseCluster struct {
	t     testing.TB
	dbURL string
	db    *pgxpool.Pool
	nodes []*server
	tok   string
}

func startLeaseCluster(t testing.TB, n int, env ...string) *leaseCluster {
	t.Helper()
	c := &leaseCluster{t: t, dbURL: pgtest.Database(t, pgTemplate)}
	shared := t.TempDir()
	for i := range n {
		s := newServer(t, append([]string{"POSTGRES_URL=" + c.dbURL, fmt.Sprintf("NODE_ID=node-%d", i),
			"RATE_LIMIT_RPS=1000000", "RATE_LIMIT_BURST=1000000"}, env...)...)
		if err := os.Symlink(shared, filepath.Join(s.dataDir, "artifacts")); err != nil {
			t.Fatal(err)
		}
		s.start()
		c.nodes = append(c.nodes, s)
	}
	pool, err := pgxpool.New(context.Background(), c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c.db = pool
	c.tok = pgAdmin(t, c.nodes[0], c.dbURL, "token", "create", "--org", "acme", "--user", "user-acme")
	for _, p := range []string{"site", "app"} {
		pgAdmin(t, c.nodes[0], c.dbURL, "project", "create", "--org", "acme", "--id", p)
	}
	return c
}

// query runs a one-row query on the cluster's database.
func (c *leaseCluster) query(query string, args []any, dest ...any) {
	c.t.Helper()
	if err := c.db.QueryRow(context.Background(), query, args...).Scan(dest...); err != nil {
		c.t.Fatalf("%s: %v", query, err)
	}
}

func (c *leaseCluster) node(id string) *server {
	for i, s := range c.nodes {
		if id == fmt.Sprintf("node-%d", i) {
			return s
		}
	}
	c.t.Fatalf("no node %q", id)
	return nil
}

// slowBuild is a project whose build (node, in the sandbox) takes about ms
// milliseconds before it writes its page.
func slowBuild(ms int, tag string) []map[string]any {
	return files(
		"package.json", `{"name":"app","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js", fmt.Sprintf(`const fs=require("fs");setTimeout(()=>{fs.mkdirSync("dist",{recursive:true});`+
			`fs.writeFileSync("dist/index.html","<p>built %s</p>")},%d)`, tag, ms))
}

// deployAll posts the bodies spread over the nodes, a few at a time, and
// returns the accepted deployments' ids.
func (c *leaseCluster) deployAll(bodies []map[string]any) []string {
	c.t.Helper()
	ids := make([]string, len(bodies))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, body := range bodies {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s := c.nodes[i%len(c.nodes)]
			if r := s.deploy(c.tok, body); r.status == 202 {
				ids[i] = r.str("deploymentId")
			}
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if id == "" {
			c.t.Fatalf("deployment %d was not accepted", i)
		}
	}
	return ids
}

// waitHolder waits until a node holds the lease of a deployment of app in
// its build step, and returns that node's id.
func (c *leaseCluster) waitHolder(timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var node string
		err := c.db.QueryRow(context.Background(), `SELECT lease_node FROM deployments
			WHERE project_id = 'app' AND lease_node != '' AND current_step = 'build' AND status = 'in_progress'
			GROUP BY lease_node ORDER BY count(*) DESC LIMIT 1`).Scan(&node)
		if err == nil {
			return node
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no build started within %s", timeout)
	return ""
}

// waitAllFinal waits until no deployment is queued or running.
func (c *leaseCluster) waitAllFinal(timeout time.Duration) (completed, failed int) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var open int
		c.query(`SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
			count(*) FILTER (WHERE status IN ('queued', 'in_progress')) FROM deployments`, nil, &completed, &failed, &open)
		if open == 0 {
			return completed, failed
		}
		if time.Now().After(deadline) {
			var open string
			c.query(`SELECT coalesce(string_agg(d.id || ' ' || d.status || ' lease=' || d.lease_node || '/' || d.lease_epoch ||
				' job=' || j.state || ' by ' || coalesce(array_to_string(j.attempted_by, ','), ''), '; '), '')
				FROM deployments d LEFT JOIN river_job j ON j.id = d.job_id WHERE d.status IN ('queued', 'in_progress')`, nil, &open)
			c.t.Fatalf("deployments still open after %s: %s", timeout, open)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// held is a deployment a node held when it was killed.
type held struct {
	id    string
	epoch int64
	job   int64
}

func (c *leaseCluster) heldBy(node string) []held {
	c.t.Helper()
	rows, err := c.db.Query(context.Background(), `SELECT id, lease_epoch, job_id FROM deployments
		WHERE lease_node = $1 AND status IN ('queued', 'in_progress')`, node)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var out []held
	for rows.Next() {
		var h held
		if err := rows.Scan(&h.id, &h.epoch, &h.job); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// Three real nodes, 200 deployments (190 static, 10 with a 3 s build)
// spread over them; the node running the most builds is killed with
// SIGKILL. Every accepted deployment completes, each is published once, the
// quota counts each once, and the dead node's deployments are taken back
// (old job cancelled, new job completed) and finish on the others.
func TestClusterKillNodeMidBuild(t *testing.T) {
	c := startLeaseCluster(t, 3)
	var bodies []map[string]any
	for i := range 200 {
		if i%20 == 0 {
			bodies = append(bodies, map[string]any{"projectId": "app", "orgId": "acme", "userId": "user-acme",
				"initFiles": slowBuild(3000, fmt.Sprint(i))})
			continue
		}
		bodies = append(bodies, staticSite("acme", "site", 3))
	}
	ids := c.deployAll(bodies)
	victim := c.waitHolder(60 * time.Second)
	orphans := c.heldBy(victim)
	killed := time.Now()
	c.node(victim).kill()
	t.Logf("killed %s holding %d deployments", victim, len(orphans))

	completed, failed := c.waitAllFinal(90 * time.Second)
	if completed != len(ids) || failed != 0 {
		t.Fatalf("%d completed, %d failed of %d accepted", completed, failed, len(ids))
	}
	c.checkPublishedOnce(len(ids), "site")
	c.checkTakenBack(orphans, victim, killed)
	c.checkSurvivors(victim)
}

// checkSurvivors: the nodes that took over stay within memory and file
// bounds far above what they use.
func (c *leaseCluster) checkSurvivors(victim string) {
	t := c.t.(*testing.T)
	for i, s := range c.nodes {
		if fmt.Sprintf("node-%d", i) == victim {
			continue
		}
		pid := s.cmd.Process.Pid
		rss, fds := rssMB(t, pid), countFds(t, pid)
		t.Logf("node-%d after the takeover: RSS %d MB, %d open fds", i, rss, fds)
		if rss > 400 || fds > 500 {
			t.Errorf("node-%d: RSS %d MB, %d fds", i, rss, fds)
		}
	}
}

// publishLines counts deployment d's "published" log lines.
const publishLines = `(SELECT count(*) FROM deployment_logs l WHERE l.deployment_id = d.id AND l.message LIKE 'published %')`

// checkPublishedOnce: every deployment has its manifest and one "published"
// log line, the quota counts each deployment once, and the alias points to
// the newest deployment (newest wins across nodes).
func (c *leaseCluster) checkPublishedOnce(n int, project string) {
	c.t.Helper()
	var published, once, used int
	// One "published" line each; or none, where the node that published
	// died before writing it, and the next attempt completed the
	// deployment without publishing again (it says so).
	c.query(`SELECT count(*) FILTER (WHERE manifest != ''), count(*) FILTER (WHERE `+publishLines+` = 1 OR `+publishLines+` = 0
		AND EXISTS (SELECT 1 FROM deployment_logs l WHERE l.deployment_id = d.id AND l.message LIKE '%earlier attempt had published%'))
		FROM deployments d`, nil, &published, &once)
	c.query(`SELECT used FROM quota_usage WHERE org_id = 'acme'`, nil, &used)
	if published != n || once != n || used != n {
		var odd string
		c.query(`SELECT coalesce(string_agg(id || ': ' || `+publishLines+`::text, ', '), '') FROM deployments d
			WHERE `+publishLines+` != 1`, nil, &odd)
		c.t.Errorf("of %d deployments: %d have a manifest, %d one publish line (others: %s); quota used %d", n, published, once, odd, used)
	}
	var current, newest string
	c.query(`SELECT coalesce(current_deployment, '') FROM projects WHERE id = $1`, []any{project}, &current)
	c.query(`SELECT id FROM deployments WHERE project_id = $1 ORDER BY seq DESC LIMIT 1`, []any{project}, &newest)
	if current != newest {
		c.t.Errorf("alias of %s: %q, newest deployment %s", project, current, newest)
	}
}

// checkTakenBack: each deployment the dead node held moved to a higher
// epoch, its old job ended cancelled and a new one completed it; prints the
// time from the kill to each one's completion.
func (c *leaseCluster) checkTakenBack(orphans []held, victim string, killed time.Time) {
	c.t.Helper()
	if len(orphans) == 0 {
		c.t.Fatalf("the killed node held no deployment")
	}
	var took []time.Duration
	for _, h := range orphans {
		var epoch, job, finished int64
		var reclaims int
		var oldState, newState string
		c.query(`SELECT lease_epoch, job_id, finished_at, reclaims FROM deployments WHERE id = $1`, []any{h.id}, &epoch, &job, &finished, &reclaims)
		c.query(`SELECT state FROM river_job WHERE id = $1`, []any{h.job}, &oldState)
		newState = c.jobStateSettled(job)
		if epoch <= h.epoch || reclaims < 1 || job == h.job || oldState != "cancelled" || newState != "completed" {
			c.t.Errorf("%s held by %s: epoch %d -> %d, reclaims %d, job %d (%s) -> %d (%s)",
				h.id, victim, h.epoch, epoch, reclaims, h.job, oldState, job, newState)
		}
		var reclaimed int64
		c.query(`SELECT coalesce(min(ts), 0) FROM deployment_logs WHERE deployment_id = $1 AND message LIKE '%dispatched again%'`,
			[]any{h.id}, &reclaimed)
		took = append(took, time.UnixMicro(finished).Sub(killed))
		c.t.Logf("  %s: taken back %s after the kill, completed %s after it", h.id,
			time.UnixMicro(reclaimed).Sub(killed).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	}
	slices.Sort(took)
	c.t.Logf("kill -9 -> completion on another node, %d deployments: p50 %s, max %s",
		len(took), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	if worst := took[len(took)-1]; worst > 60*time.Second {
		c.t.Errorf("a dead node's deployment took %s to complete elsewhere", worst)
	}
}

// jobStateSettled returns a job's state once River has recorded its end
// (which follows the deployment's final save by a moment), or after 10 s.
func (c *leaseCluster) jobStateSettled(job int64) string {
	c.t.Helper()
	var state string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c.query(`SELECT state FROM river_job WHERE id = $1`, []any{job}, &state)
		if state != "running" || time.Now().After(deadline) {
			return state
		}
	}
}

// rowSnapshot is everything a late write could change: the deployment's
// row, its logs, the project's alias, the quota and its old job.
func (c *leaseCluster) rowSnapshot(id string, job int64) string {
	c.t.Helper()
	var dep, proj, jobRow string
	var logs, used int
	c.query(`SELECT row_to_json(d)::text FROM deployments d WHERE id = $1`, []any{id}, &dep)
	c.query(`SELECT row_to_json(p)::text FROM projects p WHERE id = 'app'`, nil, &proj)
	c.query(`SELECT count(*) FROM deployment_logs WHERE deployment_id = $1`, []any{id}, &logs)
	c.query(`SELECT used FROM quota_usage WHERE org_id = 'acme'`, nil, &used)
	c.query(`SELECT state || ' ' || coalesce(finalized_at::text, '') FROM river_job WHERE id = $1`, []any{job}, &jobRow)
	return fmt.Sprintf("deployment %s\nproject %s\nlogs %d, quota used %d, old job %s", dep, proj, logs, used, jobRow)
}

// Fencing: the node running a build is paused (SIGSTOP) past its lease;
// another node takes the deployment over and completes it; then the paused
// node resumes (SIGCONT). It must notice it lost the lease and stop: it
// publishes nothing, and its late writes change no row.
func TestClusterFencingPausedNode(t *testing.T) {
	c := startLeaseCluster(t, 2, "LEASE_DURATION=4s")
	ids := c.deployAll([]map[string]any{{"projectId": "app", "orgId": "acme", "userId": "user-acme",
		"initFiles": slowBuild(5000, "fenced")}})
	holder := c.waitHolder(60 * time.Second)
	stale := c.node(holder)
	orphans := c.heldBy(holder)
	if err := stale.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	defer stale.cmd.Process.Signal(syscall.SIGCONT) // never leave it stopped

	if completed, failed := c.waitAllFinal(90 * time.Second); completed != 1 || failed != 0 {
		t.Fatalf("with %s paused: %d completed, %d failed", holder, completed, failed)
	}
	t.Logf("%s paused; the deployment completed on another node %s later", holder, time.Since(paused).Round(time.Millisecond))
	before := c.rowSnapshot(ids[0], orphans[0].job)
	if err := stale.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stale.waitLog(regexp.MustCompile(`lease lost`), 20*time.Second)
	// Give the resumed node time to try whatever it had left to do.
	time.Sleep(3 * time.Second)
	if after := c.rowSnapshot(ids[0], orphans[0].job); after != before {
		t.Fatalf("the resumed node changed rows:\nbefore %s\nafter  %s", before, after)
	}
	c.checkPublishedOnce(1, "app")
	t.Logf("resumed node's log: %s", tail(grepLines(stale.logs.String(), "lease"), 1500))
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
