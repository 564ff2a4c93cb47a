package main_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/localpg"
	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// runningCluster is a `libra-deploy cluster` process and what it printed.
type runningCluster struct {
	cmd     *exec.Cmd
	exited  chan error
	output  *lockedBuffer
	nodes   []*server
	nodePID []int
	dbURL   string
	s3PID   int
	dir     string
}

var (
	clusterNodeLine = regexp.MustCompile(`^node (\d+): (http://\S+) \(NODE_ID (\S+), pid (\d+)\)$`)
	clusterPGLine   = regexp.MustCompile(`^postgres: (\S+)$`)
	clusterS3Line   = regexp.MustCompile(`^s3: \S+ bucket \S+ \(versitygw pid (\d+)\)$`)
	clusterDirLine  = regexp.MustCompile(`^dir: (\S+) `)
)

// startCluster runs the cluster command and reads its summary.
func startCluster(t *testing.T, args ...string) *runningCluster {
	t.Helper()
	if _, err := localpg.BinDir(); err != nil && os.Getenv("CI") != "true" {
		t.Skipf("no PostgreSQL: %v", err)
	}
	s3test.Binary(t) // skips (fails under CI) without versitygw, saying how to install it
	c := &runningCluster{output: &lockedBuffer{}, exited: make(chan error, 1)}
	c.cmd = exec.Command(binary, append([]string{"cluster"}, args...)...)
	c.cmd.Env = append(os.Environ(), "RATE_LIMIT_RPS=1000000", "RATE_LIMIT_BURST=1000000")
	c.cmd.Stderr = c.output
	pr, pw := io.Pipe()
	c.cmd.Stdout = io.MultiWriter(c.output, pw)
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	go func() { err := c.cmd.Wait(); pw.Close(); c.exited <- err }()
	t.Cleanup(func() { c.kill() })
	ready := make(chan struct{})
	go c.readSummary(t, pr, ready)
	select {
	case <-ready:
	case err := <-c.exited:
		t.Fatalf("cluster exited at start: %v\n%s", err, c.output.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("cluster not ready in 3 minutes:\n%s", c.output.String())
	}
	return c
}

// readSummary parses the summary's lines; ready closes after the last.
func (c *runningCluster) readSummary(t *testing.T, r io.Reader, ready chan<- struct{}) {
	sc := bufio.NewScanner(r)
	done := false
	for sc.Scan() {
		line := sc.Text()
		if m := clusterNodeLine.FindStringSubmatch(line); m != nil {
			u, _ := url.Parse(m[2])
			pid, _ := strconv.Atoi(m[4])
			c.nodes = append(c.nodes, &server{t: t, url: m[2], port: u.Port(), logs: &lockedBuffer{}, siteHosts: new(sync.Map)})
			c.nodePID = append(c.nodePID, pid)
		} else if m := clusterPGLine.FindStringSubmatch(line); m != nil {
			c.dbURL = m[1]
		} else if m := clusterS3Line.FindStringSubmatch(line); m != nil {
			c.s3PID, _ = strconv.Atoi(m[1])
		} else if m := clusterDirLine.FindStringSubmatch(line); m != nil {
			c.dir = m[1]
		} else if strings.HasPrefix(line, "then deploy through any node") && !done {
			done = true
			close(ready)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (c *runningCluster) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// admin runs an admin command against the cluster's shared database.
func (c *runningCluster) admin(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "POSTGRES_URL="+c.dbURL, "DATA_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("libra-deploy %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// The one-command local cluster: three real nodes on one PostgreSQL and one
// versitygw bucket. A site deployed through node 1 is served by nodes 2 and
// 3; SIGTERM stops every process the command started and removes its
// temporary directory.
func TestClusterCommandThreeNodes(t *testing.T) {
	began := time.Now()
	c := startCluster(t, "--nodes", "3", "--base-port", "0")
	t.Logf("cluster of 3 nodes ready in %s", time.Since(began).Round(time.Millisecond))
	if len(c.nodes) != 3 || c.dbURL == "" || c.s3PID == 0 || c.dir == "" {
		t.Fatalf("summary incomplete: %d nodes, db %q, versitygw pid %d, dir %q\n%s", len(c.nodes), c.dbURL, c.s3PID, c.dir, c.output.String())
	}
	pids := c.processes(t)
	tok := c.admin(t, "token", "create", "--org", "acme", "--user", "user-acme")
	c.admin(t, "project", "create", "--org", "acme", "--id", "website")

	node1 := c.nodes[0]
	r := node1.deploy(tok, staticSite("acme", "website", 5))
	if r.status != 202 {
		t.Fatalf("POST /deploy on node 1: %d %s", r.status, r.body)
	}
	id := r.str("deploymentId")
	if st := node1.waitFinal(id, 60*time.Second); st.str("status") != "completed" {
		t.Fatalf("deployment %s: %s\n%s", id, st.body, c.nodeLog(1))
	}
	c.checkBlobsInBucket(t)
	label, _, _ := strings.Cut(node1.siteHost(id), ":")
	for i, n := range c.nodes[1:] {
		c.checkServes(t, i+2, n, id, []string{label, "website.localhost"})
	}
	c.logFigures(t)
	c.stopAndCheckGone(t, pids, false)
}

// With --dir the cluster keeps its state: stopped and started again on
// the same directory, it still has the token, the project and the
// published site, which a node that never served it reads from the bucket.
func TestClusterCommandKeptDirectoryRestarts(t *testing.T) {
	// PostgreSQL runs as the postgres user, which must reach the directory:
	// t.TempDir()'s parent is private.
	parent, err := os.MkdirTemp("", "kc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "c")
	c := startCluster(t, "--nodes", "2", "--base-port", "0", "--dir", dir)
	tok := c.admin(t, "token", "create", "--org", "acme", "--user", "user-acme")
	c.admin(t, "project", "create", "--org", "acme", "--id", "website")
	r := c.nodes[0].deploy(tok, staticSite("acme", "website", 5))
	if r.status != 202 {
		t.Fatalf("POST /deploy: %d %s", r.status, r.body)
	}
	id := r.str("deploymentId")
	if st := c.nodes[0].waitFinal(id, 60*time.Second); st.str("status") != "completed" {
		t.Fatalf("deployment %s: %s\n%s", id, st.body, c.nodeLog(1))
	}
	c.stopAndCheckGone(t, c.processes(t), true)

	again := startCluster(t, "--nodes", "2", "--base-port", "0", "--dir", dir)
	again.checkServes(t, 2, again.nodes[1], id, []string{"website.localhost"})
	if r := again.nodes[1].deploy(tok, staticSite("acme", "website", 2)); r.status != 202 {
		t.Errorf("the kept token on the restarted cluster: %d %s", r.status, r.body)
	}
	again.stopAndCheckGone(t, again.processes(t), true)
}

// checkServes: the node reports the deployment and serves both its hosts.
func (c *runningCluster) checkServes(t *testing.T, index int, n *server, id string, hosts []string) {
	t.Helper()
	if st := n.do("GET", "/deploy-status?id="+id, nil); st.str("status") != "completed" {
		t.Errorf("node %d: deploy-status %d %s", index, st.status, st.body)
	}
	for _, host := range hosts {
		page := n.do("GET", "/", nil, "Host", host+":"+n.port)
		if page.status != 200 || !strings.Contains(string(page.body), "hello website") {
			t.Errorf("node %d: GET / on %s: %d %.200s\n%s", index, host, page.status, page.body, c.nodeLog(index))
		}
		css := n.do("GET", "/assets/file-4.css", nil, "Host", host+":"+n.port)
		if css.status != 200 || string(css.body) != "body{--n:4}" {
			t.Errorf("node %d: GET /assets/file-4.css on %s: %d %.200s", index, host, css.status, css.body)
		}
	}
}

// checkBlobsInBucket: the files went to the shared bucket (versitygw's
// posix backend keeps each object as a file), none to node 1's local disk.
func (c *runningCluster) checkBlobsInBucket(t *testing.T) {
	t.Helper()
	inBucket, onNode := countFiles(filepath.Join(c.dir, "s3", "libra")), countFiles(filepath.Join(c.dir, "node1", "artifacts"))
	t.Logf("objects in the bucket: %d; files in node 1's local artifacts directory: %d", inBucket, onNode)
	if inBucket < 5 || onNode != 0 {
		t.Errorf("want the 5 files' blobs in the bucket and none on node 1's disk: %d and %d", inBucket, onNode)
	}
}

func countFiles(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func (c *runningCluster) nodeLog(index int) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "logs", fmt.Sprintf("node%d.log", index)))
	return tail(string(b), 3000)
}

// processes lists every process the cluster runs: the command's
// descendants (nodes, versitygw, localpg's watchdog) and the postmaster,
// which pg_ctl detached. The pids it printed must be among them.
func (c *runningCluster) processes(t *testing.T) []int {
	t.Helper()
	pids := descendants(c.cmd.Process.Pid)
	for _, want := range append([]int{c.s3PID}, c.nodePID...) {
		if !containsPID(pids, want) {
			t.Errorf("printed pid %d is not a child of the cluster command (children: %v)", want, pids)
		}
	}
	b, err := os.ReadFile(filepath.Join(c.dir, "pg", "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || !alive(pm) {
		t.Fatalf("postmaster pid %q: %v", first, err)
	}
	pids = append(pids, pm)
	// PostgreSQL's own workers are the postmaster's children.
	return append(pids, descendants(pm)...)
}

// logFigures prints each node's memory and descriptors, with generous
// bounds: three nodes and their PostgreSQL share a 2-core machine.
func (c *runningCluster) logFigures(t *testing.T) {
	t.Helper()
	for i, pid := range c.nodePID {
		rss, fds := processFigures(t, pid)
		t.Logf("node %d: RSS %.0f MiB, %d fds", i+1, rss, fds)
		if rss > 400 || fds > 200 {
			t.Errorf("node %d: RSS %.0f MiB, %d fds; want under 400 MiB and 200", i+1, rss, fds)
		}
	}
}

// stopAndCheckGone sends SIGTERM and checks the command exits 0, every
// process it ran is gone, no node port answers, and the directory is gone,
// or, when kept, still there.
func (c *runningCluster) stopAndCheckGone(t *testing.T, pids []int, kept bool) {
	t.Helper()
	began := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		if err != nil {
			t.Errorf("cluster exit after SIGTERM: %v\n%s", err, tail(c.output.String(), 3000))
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("cluster did not stop within 2 minutes of SIGTERM:\n%s", c.output.String())
	}
	t.Logf("cluster stopped %s after SIGTERM; %d processes checked", time.Since(began).Round(time.Millisecond), len(pids))
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d (%s) still runs after the cluster stopped", pid, comm(pid))
		}
	}
	for i, n := range c.nodes {
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+n.port, time.Second); err == nil {
			conn.Close()
			t.Errorf("node %d's port %s still accepts connections", i+1, n.port)
		}
	}
	if _, err := os.Stat(c.dir); kept == errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster's directory %s (kept: %v): %v", c.dir, kept, err)
	}
}

// descendants lists the live descendants of pid, read from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentPID(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		next := children[queue[0]]
		queue = append(queue[1:], next...)
		out = append(out, next...)
	}
	return out
}

// procStat returns the fields of /proc/pid/stat after the command name.
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:]), true
}

func parentPID(pid int) (int, bool) {
	f, ok := procStat(pid)
	if !ok || len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// alive: the process exists and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	f, ok := procStat(pid)
	return ok && len(f) > 0 && f[0] != "Z"
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

func containsPID(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// A cluster command killed outright (no chance to stop anything) still
// leaves nothing running: the nodes and versitygw get their parent-death
// signal, and localpg's watchdog stops PostgreSQL.
func TestClusterCommandKilledLeavesNothingRunning(t *testing.T) {
	c := startCluster(t, "--nodes", "2", "--base-port", "0")
	pids := c.processes(t)
	t.Cleanup(func() { os.RemoveAll(c.dir) }) // the killed command could not
	began := time.Now()
	c.kill()
	deadline := time.Now().Add(60 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d (%s) still runs 60 s after the cluster command was killed", pid, comm(pid))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("all %d processes gone %s after SIGKILL of the cluster command", len(pids), time.Since(began).Round(time.Millisecond))
}

// Bad flags: a clear message, exit status 1, nothing started.
func TestClusterCommandRefusesBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "0"}, "--nodes 0: want 1 to 16"},
		{[]string{"--nodes", "17"}, "--nodes 17: want 1 to 16"},
		{[]string{"--base-port", "65535", "--nodes", "3"}, "--base-port 65535: the nodes' ports must lie in 1-65535"},
		{[]string{"--s3-port", "-1"}, "--s3-port -1: want 0-65535"},
		{[]string{"extra"}, "unexpected arguments: [extra]"},
	}
	if os.Geteuid() == 0 { // the postgres user cannot pass t.TempDir()'s 0700
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"--dir", filepath.Join(t.TempDir(), "c")}, "the postgres user cannot reach"})
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"cluster"}, tc.args...)...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "node 1:") {
				t.Fatalf("output %q, want %q and no node", out, tc.want)
			}
		})
	}
}
