package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

// binary is the libra-deploy built once for all tests: they drive the real
// program, as a user would, over real HTTP.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "libra-e2e-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "libra-deploy")
	var out []byte
	if prebuilt := os.Getenv("LIBRA_E2E_BINARY"); prebuilt != "" {
		// A binary built elsewhere (another commit, say), so a benchmark
		// can compare two versions on the same machine in one session.
		binary = prebuilt
	} else {
		out, err = exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "build libra-deploy: %v\n%s", err, out)
		os.Exit(1)
	}
	// pgtest.Main runs the tests and stops the PostgreSQL cluster that
	// the POSTGRES_URL tests start on first use.
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one `libra-deploy serve` process on a free port.
type server struct {
	t       testing.TB
	dataDir string
	cgroup  string   // the server's SANDBOX_CGROUP
	base    []string // per-server settings every start keeps
	env     []string // the test's settings; a test may change them between starts
	cmd     *exec.Cmd
	url     string
	port    string
	logs    *lockedBuffer
	exited  chan error
	// siteHosts remembers each finished deployment's site host (id ->
	// host), so a test can still ask its URL after deleting it.
	// sandboxRoot holds what build uids reach: work/, cache/, state/.
	sandboxRoot string
	siteHosts   *sync.Map // deployment id → site host, shared by forTest copies
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var serverSeq atomic.Int64

var listening = regexp.MustCompile(`^libra-deploy listening on http://[^ ]*:(\d+)$`)

// startServer starts serve on a fresh data directory; env adds variables.
func startServer(t testing.TB, env ...string) *server {
	t.Helper()
	s := newServer(t, env...)
	s.start()
	return s
}

// testSecretKey is the LIBRA_SECRET_KEY of servers on PostgreSQL.
const testSecretKey = "bGlicmEtZGVwbG95LWUyZS10ZXN0LXNlY3JldC1rZXk="

// newServer prepares a server on a fresh data directory without starting
// it, for a test that puts something there first.
func newServer(t testing.TB, env ...string) *server {
	t.Helper()
	// The data directory stays below the test's private (0700) temporary
	// directory: builds must work whatever the data directory's parents are.
	s := &server{t: t, dataDir: t.TempDir(), env: env, siteHosts: new(sync.Map)}
	// Each server gets its own build uids, cgroup and sandbox root, so that
	// test packages running at once (the sandbox's own tests, other e2e
	// servers) never share, and nothing is left in /var/lib.
	n := serverSeq.Add(1)
	root, err := os.MkdirTemp("", "libra-e2e-root-")
	if err != nil {
		t.Fatal(err)
	}
	cgroup := fmt.Sprintf("libra-e2e-%d-%d", os.Getpid(), n)
	s.cgroup = cgroup
	s.sandboxRoot = root
	s.base = []string{
		fmt.Sprintf("SANDBOX_UID_BASE=%d", 400000+(os.Getpid()%500)*200+int(n%20)*10),
		"SANDBOX_CGROUP=" + cgroup,
		"SANDBOX_ROOT=" + root,
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "POSTGRES_URL=") }) {
		// Cluster mode requires the key; nodes of one test share it.
		s.base = append(s.base, "LIBRA_SECRET_KEY="+testSecretKey)
	}
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "BUILD_DEFAULT_PACKAGE_MANAGER=") }) {
		// The tests' logs and timings assume npm, whatever this host has
		// installed; TestDefaultPackageManager tests the default itself.
		s.base = append(s.base, "BUILD_DEFAULT_PACKAGE_MANAGER=npm")
	}
	t.Cleanup(func() {
		s.kill()
		// A killed server cannot remove its cgroups or its sandbox root.
		if err := removeCgroups(s.cgroup); err != nil {
			t.Errorf("remove cgroups of a stopped server: %v", err)
		}
		os.RemoveAll(root)
	})
	return s
}

// cgroupDirs lists the directories named name below this process's own
// cgroup in every mounted hierarchy (v1 controllers, or v2): a server puts
// its cgroup parent there.
func cgroupDirs(name string) []string {
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		mounts := []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
		if f[1] != "" {
			mounts = nil
			for _, ctrl := range strings.Split(f[1], ",") {
				mounts = append(mounts, "/sys/fs/cgroup/"+strings.TrimPrefix(ctrl, "name="))
			}
		}
		for _, m := range mounts {
			d := filepath.Join(m, f[2], name)
			if fi, err := os.Stat(d); err == nil && fi.IsDir() && !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// removeCgroups kills what is left in the cgroups named name and removes
// them, children first.
func removeCgroups(name string) error {
	var errs []error
	for _, dir := range cgroupDirs(name) {
		var tree []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				tree = append(tree, p)
			}
			return nil
		})
		slices.Reverse(tree)
		for _, d := range tree {
			errs = append(errs, rmdirCgroup(d))
		}
	}
	return errors.Join(errs...)
}

// rmdirCgroup removes one cgroup, killing its processes until it is empty.
func rmdirCgroup(dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(procs)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rmdir %s: %w", dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", s.dataDir)
	s.cmd.Env = append(os.Environ(), "RETRY_BACKOFF_MS=100")
	s.cmd.Env = append(s.cmd.Env, s.base...)
	s.cmd.Env = append(s.cmd.Env, s.env...)
	s.logs = &lockedBuffer{}
	pr, pw := io.Pipe()
	s.cmd.Stderr = s.logs
	s.cmd.Stdout = io.MultiWriter(s.logs, pw)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start serve: %v", err)
	}
	s.exited = make(chan error, 1)
	go func() { err := s.cmd.Wait(); pw.Close(); s.exited <- err }()
	portc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil && !sent {
				portc <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case p := <-portc:
		s.port = p
		s.url = "http://127.0.0.1:" + p
	case err := <-s.exited:
		s.t.Fatalf("serve exited at start: %v\n%s", err, s.logs.String())
	case <-time.After(20 * time.Second):
		s.t.Fatalf("serve did not start in 20s:\n%s", s.logs.String())
	}
}

// kill stops the process at once, as a crash would.
func (s *server) kill() {
	if s.cmd != nil && s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
	}
}

// stop sends SIGTERM and returns the exit error (nil for exit 0).
func (s *server) stop(timeout time.Duration) error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		return err
	case <-time.After(timeout):
		s.t.Fatalf("serve did not stop within %s", timeout)
		return nil
	}
}

// admin runs an admin subcommand on the server's data directory.
func (s *server) admin(args ...string) string {
	s.t.Helper()
	args = append(args, "--data-dir", s.dataDir)
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("libra-deploy %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// setup creates a token and a project for org.
func (s *server) setup(org, project string) string {
	s.t.Helper()
	tok := s.admin("token", "create", "--org", org, "--user", "user-"+org)
	s.admin("project", "create", "--org", org, "--id", project)
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r response) str(key string) string {
	v, _ := r.json[key].(string)
	return v
}

// do sends a request; header pairs are "Name", "value".
func (s *server) do(method, path string, body any, header ...string) response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

func (s *server) deploy(token string, body map[string]any) response {
	s.t.Helper()
	return s.do("POST", "/deploy", body, "Authorization", "Bearer "+token)
}

// staticSite is a deploy body with n files, index.html first.
func staticSite(org, project string, n int) map[string]any {
	files := []map[string]any{{"path": "index.html", "content": "<!doctype html><h1>hello " + project + "</h1>"}}
	for i := 1; i < n; i++ {
		files = append(files, map[string]any{"path": fmt.Sprintf("assets/file-%d.css", i), "content": fmt.Sprintf("body{--n:%d}", i)})
	}
	return map[string]any{"projectId": project, "orgId": org, "userId": "user-" + org, "initFiles": files}
}

// statusPath asks for the log lines as objects too: logMessages and
// runTime read them.
func statusPath(id string) string { return "/deploy-status?logEntries=true&id=" + id }

// waitFinal polls /deploy-status until the deployment is completed or failed.
func (s *server) waitFinal(id string, timeout time.Duration) response {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := s.do("GET", statusPath(id), nil)
		if r.status != 200 {
			s.t.Fatalf("deploy-status %s: %d %s", id, r.status, r.body)
		}
		if st := r.str("status"); st == "completed" || st == "failed" {
			if u, err := url.Parse(r.str("url")); err == nil && u.Host != "" {
				s.siteHosts.Store(id, u.Host)
			}
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("deployment %s not final after %s: %s\nserver log:\n%s", id, timeout, r.body, tail(s.logs.String(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls the status until cond holds.
func (s *server) waitFor(id string, timeout time.Duration, cond func(response) bool) response {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := s.do("GET", statusPath(id), nil)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("deployment %s: condition not met after %s: %s", id, timeout, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func stepStatus(r response, step string) string {
	steps, _ := r.json["steps"].(map[string]any)
	st, _ := steps[step].(map[string]any)
	v, _ := st["status"].(string)
	return v
}

// waitLog waits until the server's log matches re. The JSON log (stderr) and
// the listening line (stdout) travel through different pipes, so a line
// logged before start() returned may still be on its way.
func (s *server) waitLog(re *regexp.Regexp, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !re.MatchString(s.logs.String()) {
		if time.Now().After(deadline) {
			s.t.Fatalf("server log never matched %s:\n%s", re, tail(s.logs.String(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// siteHost returns the host (with port) of a published deployment's
// immutable URL, as its status reports it: a site label of its own, never
// its id.
func (s *server) siteHost(id string) string {
	s.t.Helper()
	if h, ok := s.siteHosts.Load(id); ok {
		return h.(string)
	}
	r := s.do("GET", "/deploy-status?id="+id, nil)
	u, err := url.Parse(r.str("url"))
	if r.status != 200 || err != nil || u.Host == "" {
		s.t.Fatalf("deployment %s has no site url: %d %s", id, r.status, r.body)
	}
	s.siteHosts.Store(id, u.Host)
	return u.Host
}
