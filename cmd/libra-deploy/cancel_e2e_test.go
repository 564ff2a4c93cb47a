package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cancelBudget is the bound from the cancel request to the build's
// whole process tree gone.
const cancelBudget = 2 * time.Second

// treeJS starts a tree of sleeping processes (one branch in a session of
// its own, as a daemonizing build tool would), says so, and waits forever:
// only a cancel ends it.
const treeJS = `const {spawn} = require("child_process");
for (let i = 0; i < 3; i++) {
  spawn("sh", ["-c", "sleep 300 & sleep 300 & wait"], {detached: i === 0, stdio: "ignore"}).unref();
}
console.log("TREE READY " + process.argv[2]);
setInterval(() => {}, 1000);
`

// treeProject starts the tree in its install (a preinstall script, which
// npm install runs) or in its build.
func treeProject(phase string) []map[string]any {
	scripts := `"build":"node tree.js build"`
	if phase == "install" {
		scripts = `"preinstall":"node tree.js install","build":"node -e 0"`
	}
	return files("package.json", `{"name":"tree","private":true,"scripts":{`+scripts+`}}`, "tree.js", treeJS)
}

// uidRange is the server's build uids: SANDBOX_UID_BASE and the next
// MAX_CONCURRENT_DEPLOYMENTS (a few, in these tests).
func uidRange(t *testing.T, s *server) (lo, hi int) {
	t.Helper()
	for _, kv := range s.base {
		if v, ok := strings.CutPrefix(kv, "SANDBOX_UID_BASE="); ok {
			lo, _ = strconv.Atoi(v)
		}
	}
	if lo == 0 {
		t.Fatal("no SANDBOX_UID_BASE in the server's settings")
	}
	return lo, lo + 5
}

func cancel(s *server, tok, id string) response {
	s.t.Helper()
	return s.do("POST", "/deployments/"+id+"/cancel", nil, bearer(tok)...)
}

// waitStatus polls the status until it is want; any other final status
// fails the test.
func waitStatus(t *testing.T, s *server, id, want string, timeout time.Duration) response {
	t.Helper()
	return s.waitFor(id, timeout, func(r response) bool {
		st := r.str("status")
		if st != want && (st == "completed" || st == "failed" || st == "cancelled") {
			t.Fatalf("deployment %s ended %s, want %s: %.2000s", id, st, want, r.body)
		}
		return st == want
	})
}

func stepError(r response, step string) string {
	steps, _ := r.json["steps"].(map[string]any)
	st, _ := steps[step].(map[string]any)
	v, _ := st["error"].(string)
	return v
}

// sandboxParts lists the server's build cgroups, sandbox directories and
// deployment working directories.
func sandboxParts(t *testing.T, s *server) (cgroups, boxes []string) {
	t.Helper()
	for _, dir := range cgroupDirs(s.cgroup) {
		left, _ := filepath.Glob(filepath.Join(dir, "b*"))
		cgroups = append(cgroups, left...)
	}
	for _, dir := range []string{"state/boxes", "work"} {
		entries, err := os.ReadDir(filepath.Join(s.sandboxRoot, dir))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				boxes = append(boxes, filepath.Join(dir, e.Name()))
			}
		}
	}
	return cgroups, boxes
}

// checkSandboxGone: no build cgroup and no sandbox directory left.
func checkSandboxGone(t *testing.T, s *server) {
	t.Helper()
	if cgroups, boxes := sandboxParts(t, s); len(cgroups)+len(boxes) > 0 {
		t.Errorf("left after the cancel: build cgroups %v, directories %v", cgroups, boxes)
	}
}

// cancelTree cancels deployment id once its tree runs (on server runner),
// sending the request to server via, and returns how long after the
// request no process of the tree was alive.
func cancelTree(t *testing.T, via, runner *server, tok, id, phase string) time.Duration {
	t.Helper()
	runner.waitFor(id, 3*time.Minute, func(r response) bool {
		if st := r.str("status"); st == "completed" || st == "failed" || st == "cancelled" {
			t.Fatalf("deployment ended %s before its tree ran: %.2000s", st, r.body)
		}
		return strings.Contains(string(r.body), "TREE READY "+phase)
	})
	lo, hi := uidRange(t, runner)
	before := processesOfUIDs(lo, hi)
	if len(liveProcesses(before)) < 7 { // node, three sh, six sleeps: the check below can fail
		t.Fatalf("the tree is not running as a build uid: %v", before)
	}
	// The checks after the cancel can fail: the sandbox exists now.
	if cgroups, boxes := sandboxParts(t, runner); len(cgroups) == 0 || len(boxes) < 2 {
		t.Fatalf("a running build without its sandbox and working directory: build cgroups %v, directories %v", cgroups, boxes)
	}
	sent := time.Now()
	r := cancel(via, tok, id)
	wantCode(t, r, 202, "")
	if r.json["success"] != true || r.str("deploymentId") != id || r.str("status") != "in_progress" ||
		r.str("message") == "" || r.str("timestamp") == "" {
		t.Fatalf("cancel of a running deployment: %s", r.body)
	}
	for len(liveProcesses(processesOfUIDs(lo, hi))) > 0 {
		if time.Since(sent) > 10*time.Second {
			t.Fatalf("processes still running 10 s after the cancel: %v", processesOfUIDs(lo, hi))
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(sent)
	// A killed process whose parent died first is a zombie of the host's
	// init until it reaps it: dead, holding nothing but a pid, on the
	// init's schedule rather than ours. Gone in the end all the same.
	for len(processesOfUIDs(lo, hi)) > 0 {
		if time.Since(sent) > 15*time.Second {
			t.Fatalf("zombies of the build not reaped 15 s after the cancel: %v", processesOfUIDs(lo, hi))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("cancel: live processes gone %s after the request, reaped by %s", took.Round(time.Millisecond),
		time.Since(sent).Round(time.Millisecond))
	return took
}

// liveProcesses drops zombies from a processesOfUIDs list.
func liveProcesses(procs []string) []string {
	var out []string
	for _, p := range procs {
		pid, _, _ := strings.Cut(p, ":")
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// The state follows the parenthesised command name.
		if i := strings.LastIndexByte(string(stat), ')'); i < 0 || !strings.HasPrefix(string(stat[i:]), ") Z") {
			out = append(out, p)
		}
	}
	return out
}

// checkCancelledRun: cancelled, the stopped step failed "cancelled", and
// cleanup completed.
func checkCancelledRun(t *testing.T, st response, stopped string) {
	t.Helper()
	if st.str("error") != "cancelled" || stepStatus(st, stopped) != "failed" || stepError(st, stopped) != "cancelled" ||
		stepStatus(st, "cleanup") != "completed" || stepStatus(st, "deploy") != "pending" || st.str("url") != "" {
		t.Fatalf("cancelled deployment: %.3000s", st.body)
	}
}

// A running build, cancelled during its install and during its build:
// its whole process tree is gone within 2 s, its cgroup and sandbox
// directory are removed, its cleanup runs, it ends cancelled and is not
// retried, its quota stays spent, and its uid is free for the next build
// (one uid only: MAX_CONCURRENT_DEPLOYMENTS=1).
func TestCancelRunningBuild(t *testing.T) {
	s := startServer(t, "MAX_CONCURRENT_DEPLOYMENTS=1", "MAX_DEPLOYMENT_TIMEOUT=300000")
	tok := s.setup("acme", "tree")
	for i, phase := range []string{"install", "build"} {
		t.Run(phase, func(t *testing.T) {
			id := deployFiles(s, tok, "acme", "tree", treeProject(phase)).str("deploymentId")
			took := cancelTree(t, s, s, tok, id, phase)
			t.Logf("cancel during %s: process tree gone %s after the request", phase, took.Round(time.Millisecond))
			if took > cancelBudget {
				t.Errorf("process tree gone after %s, want at most %s", took, cancelBudget)
			}
			st := waitStatus(t, s, id, "cancelled", 30*time.Second)
			checkCancelledRun(t, st, "build")
			checkSandboxGone(t, s)
			if strings.Contains(string(st.body), "attempt 2") {
				t.Errorf("a cancelled deployment was retried: %.2000s", st.body)
			}
			if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, fmt.Sprintf("%d used", i+1)) {
				t.Errorf("quota after a cancel once the build began: %q, want %d used (spent)", out, i+1)
			}
		})
	}
	// The only build uid is free again: a build runs and completes.
	r := deployFiles(s, tok, "acme", "tree", slowBuild(10, "after"))
	if st := s.waitFinal(r.str("deploymentId"), 2*time.Minute); st.str("status") != "completed" {
		t.Fatalf("a build after the cancels: %.2000s", st.body)
	}
	checkNoBuildProcesses(t, s)
}

// A queued deployment, cancelled while another occupies the only worker,
// never starts and gets its quota back; the running one, cancelled in a
// step before its build, gets its quota back too.
func TestCancelQueued(t *testing.T) {
	s := startServer(t, "MAX_CONCURRENT_DEPLOYMENTS=1", "LIBRA_TEST_HOOKS=validate@blocker:sleep:60s",
		"ADMIN_TOKEN="+testAdminToken)
	tok := s.setup("acme", "blocker")
	s.admin("project", "create", "--org", "acme", "--id", "queued")
	blocker := deployFiles(s, tok, "acme", "blocker", staticSite("acme", "blocker", 1)["initFiles"].([]map[string]any)).str("deploymentId")
	s.waitFor(blocker, 30*time.Second, func(r response) bool { return stepStatus(r, "validate") == "in_progress" })
	queued := deployFiles(s, tok, "acme", "queued", staticSite("acme", "queued", 1)["initFiles"].([]map[string]any)).str("deploymentId")
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "2 used") {
		t.Fatalf("quota with two deployments: %q", out)
	}
	r := cancel(s, tok, queued)
	wantCode(t, r, 202, "")
	if r.str("status") != "cancelled" || r.str("deploymentId") != queued || r.json["success"] != true {
		t.Fatalf("cancel of a queued deployment: %s", r.body)
	}
	st := s.do("GET", statusPath(queued), nil)
	if st.str("status") != "cancelled" || st.json["progress"] != float64(0) || st.str("currentStep") != "" {
		t.Fatalf("status of a cancelled queued deployment: %s", st.body)
	}
	for _, step := range []string{"validate", "sync", "sandbox", "build", "deploy", "cleanup"} {
		if stepStatus(st, step) != "pending" {
			t.Fatalf("step %s of a deployment cancelled while queued: %s", step, st.body)
		}
	}
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "1 used") {
		t.Fatalf("quota after cancelling the queued deployment: %q, want 1 used", out)
	}
	// Freeing the worker: the cancelled one still never runs.
	wantCode(t, cancel(s, tok, blocker), 202, "")
	bst := waitStatus(t, s, blocker, "cancelled", 10*time.Second)
	checkCancelledRun(t, bst, "validate")
	if out := s.admin("quota", "show", "--org", "acme"); !strings.Contains(out, "0 used") {
		t.Fatalf("quota after cancelling before the build: %q, want 0 used", out)
	}
	time.Sleep(time.Second) // room for a worker that would wrongly take the cancelled job
	st = s.do("GET", statusPath(queued), nil)
	if st.str("status") != "cancelled" || stepStatus(st, "validate") != "pending" || strings.Contains(string(st.body), "completed in") {
		t.Fatalf("the cancelled queued deployment ran: %s", st.body)
	}
	wantCode(t, cancel(s, tok, queued), 409, "DEPLOYMENT_FINISHED")
	checkCancelMetrics(t, s)
}

// checkCancelMetrics: both cancels counted as finished "cancelled"; the
// queued one's job was cancelled in River, the running one's completed
// (neither retried nor dead-lettered).
func checkCancelMetrics(t *testing.T, s *server) {
	t.Helper()
	families, _ := scrapeWhen(t, s, queueSettled)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"libra_deployments_finished_total", []string{"status", "cancelled"}, 2},
		{"libra_deployments_finished_total", []string{"status", "failed"}, 0},
		{"libra_queue_jobs", []string{"state", "cancelled"}, 1},
		{"libra_queue_jobs", []string{"state", "completed"}, 1},
		{"libra_queue_jobs", []string{"state", "discarded"}, 0},
	} {
		if got, ok := metricValue(families, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

// Finished deployments answer 409, another org's and unknown ones 404, a
// missing token 401; none of them changes anything.
func TestCancelRefused(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "site")
	other := s.setup("globex", "theirs")
	id := deployFiles(s, tok, "acme", "site", staticSite("acme", "site", 2)["initFiles"].([]map[string]any)).str("deploymentId")
	if st := s.waitFinal(id, 30*time.Second); st.str("status") != "completed" {
		t.Fatalf("deployment: %s", st.body)
	}
	for _, c := range []struct {
		name, id, tok string
		status        int
		code          string
	}{
		{"completed", id, tok, 409, "DEPLOYMENT_FINISHED"},
		{"another org's", id, other, 404, "DEPLOYMENT_NOT_FOUND"},
		{"unknown", strings.Repeat("a", 26), tok, 404, "DEPLOYMENT_NOT_FOUND"},
		{"not an id", "nope", tok, 404, "DEPLOYMENT_NOT_FOUND"},
		{"without a token", id, "", 401, "UNAUTHORIZED"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("POST", "/deployments/"+c.id+"/cancel", nil)
			if c.tok != "" {
				r = cancel(s, c.tok, c.id)
			}
			wantCode(t, r, c.status, c.code)
		})
	}
	st := s.do("GET", statusPath(id), nil)
	if st.str("status") != "completed" || st.str("url") == "" {
		t.Fatalf("a refused cancel changed the deployment: %s", st.body)
	}
	if site := s.do("GET", "/", nil, "Host", "site.localhost:"+s.port); site.status != 200 {
		t.Fatalf("production after a refused cancel: %d", site.status)
	}
}

// Two nodes on PostgreSQL: the cancel is sent to the node that does not
// run the build; the one that does kills it within 2 s.
func TestCancelAcrossNodesPostgres(t *testing.T) {
	c := startLeaseCluster(t, 2, "MAX_CONCURRENT_DEPLOYMENTS=1", "MAX_DEPLOYMENT_TIMEOUT=300000")
	id := c.deployAll([]map[string]any{{"projectId": "app", "orgId": "acme", "userId": "user-acme",
		"initFiles": treeProject("build")}})[0]
	holder := c.waitHolder(3 * time.Minute)
	runner := c.node(holder)
	via := c.nodes[0]
	if via == runner {
		via = c.nodes[1]
	}
	took := cancelTree(t, via, runner, c.tok, id, "build")
	t.Logf("cancel sent to the other node: process tree gone %s after the request", took.Round(time.Millisecond))
	if took > cancelBudget {
		t.Errorf("process tree gone after %s, want at most %s", took, cancelBudget)
	}
	st := waitStatus(t, via, id, "cancelled", 30*time.Second)
	checkCancelledRun(t, st, "build")
	checkSandboxGone(t, runner)
	var jobState string
	c.query(`SELECT j.state FROM deployments d JOIN river_job j ON j.id = d.job_id WHERE d.id = $1`, []any{id}, &jobState)
	if jobState != "completed" {
		t.Errorf("the cancelled deployment's job is %s, want completed (not retried, not dead-lettered)", jobState)
	}
}
