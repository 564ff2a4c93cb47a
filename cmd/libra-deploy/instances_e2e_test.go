package main_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTwoInstancesOneHost: two serve processes on one host, both with the
// default build uids and cgroup parent (no SANDBOX_UID_BASE, no
// SANDBOX_CGROUP), each run builds at once: no uid and no cgroup is shared,
// and all complete. Then one is SIGKILLed mid-build and a third starts: it
// takes over the dead one's uids, removes its cgroups, takes back the files
// its builds left to those uids, and leaves the live instance alone.
func TestTwoInstancesOneHost(t *testing.T) {
	lockDefaultUIDs(t)
	a, aUIDs := startDefaultInstance(t)
	b, bUIDs := startDefaultInstance(t)
	t.Logf("instance a: cgroup %s, uids %v; instance b: cgroup %s, uids %v", a.cgroup, aUIDs, b.cgroup, bUIDs)
	if a.cgroup == b.cgroup || slices.ContainsFunc(aUIDs, func(u int) bool { return slices.Contains(bUIDs, u) }) {
		t.Fatalf("two instances share a cgroup parent (%s, %s) or uids (%v, %v)", a.cgroup, b.cgroup, aUIDs, bUIDs)
	}
	tokA, tokB := setupProbeProjects(a, "org-a", 3), setupProbeProjects(b, "org-b", 3)
	watch := watchBuildUIDs(a.cgroup, b.cgroup)
	idsA := deployProbes(a, tokA, "org-a", 3, 4000)
	idsB := deployProbes(b, tokB, "org-b", 3, 4000)
	probesA := finishedProbes(t, a, idsA)
	probesB := finishedProbes(t, b, idsB)
	watch.finish()
	checkWatchedUIDs(t, watch, map[string][]int{a.cgroup: aUIDs, b.cgroup: bUIDs})
	checkProbes(t, "a", probesA, a.cgroup, aUIDs)
	checkProbes(t, "b", probesB, b.cgroup, bUIDs)
	if !overlapping(probesA, probesB) {
		t.Fatalf("no build of a ran while one of b ran: the test proves nothing\na: %+v\nb: %+v", probesA, probesB)
	}
	checkClaimFds(t, a)

	// b dies with three builds running: their cgroups, processes and
	// working directories are left to their uids.
	deployProbes(b, tokB, "org-b", 3, 120000)
	waitBuildCgroups(t, b.cgroup, 3)
	left := filesOwnedBy(t, b.sandboxRoot, bUIDs)
	b.kill()
	t.Logf("b killed with 3 builds running; %d files under its sandbox root owned by its uids", left)
	if left == 0 {
		t.Fatal("the killed builds left no files to their uids: the take-back below proves nothing")
	}

	// c asks for b's uids by name: from the default pool it would get the
	// lowest free ones, which any other libra-deploy on the host (a user's,
	// another test package's) may hold, so which it got would prove nothing.
	// Claiming them must still wait for nobody: b is dead.
	begin := time.Now()
	c, cUIDs := startDefaultInstance(t, fmt.Sprintf("SANDBOX_UID_BASE=%d", bUIDs[0]))
	t.Logf("instance c ready in %s: cgroup %s, uids %v", time.Since(begin).Round(time.Millisecond), c.cgroup, cUIDs)
	checkTakenOver(t, a, b, bUIDs, cUIDs)

	tokC := setupProbeProjects(c, "org-c", 3)
	checkProbes(t, "c", finishedProbes(t, c, deployProbes(c, tokC, "org-c", 3, 500)), c.cgroup, cUIDs)
	// The live instance kept its cgroups and uids through c's clean-up.
	checkProbes(t, "a after c started", finishedProbes(t, a, deployProbes(a, tokA, "org-a", 1, 100)), a.cgroup, aUIDs)
}

// lockDefaultUIDs serialises the tests that use the default uid pool (they
// assert which uids an instance gets); the instances themselves claim their
// uids host-wide whatever the tests do.
func lockDefaultUIDs(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("builds need root")
	}
	if err := os.MkdirAll("/run/libra-deploy", 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile("/run/libra-deploy/e2e-default-uids.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

var claimedUIDs = regexp.MustCompile(`"uids":"([0-9,]+)"`)

// startDefaultInstance starts serve with the default uid pool and cgroup
// parent, and returns the uids it claimed, as it logs them.
func startDefaultInstance(t *testing.T, env ...string) (*server, []int) {
	t.Helper()
	s := startServer(t, append([]string{"SANDBOX_UID_BASE=", "SANDBOX_CGROUP="}, env...)...)
	defaultCgroupOf(t, s)
	s.waitLog(claimedUIDs, 10*time.Second)
	var uids []int
	for _, f := range strings.Split(claimedUIDs.FindStringSubmatch(s.logs.String())[1], ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, n)
	}
	if len(uids) != 5 {
		t.Fatalf("claimed uids %v: want MAX_CONCURRENT_DEPLOYMENTS (5)", uids)
	}
	return s, uids
}

func setupProbeProjects(s *server, org string, n int) string {
	tok := s.setup(org, "probe-0")
	for i := 1; i < n; i++ {
		s.admin("project", "create", "--org", org, "--id", fmt.Sprintf("probe-%d", i))
	}
	return tok
}

// buildProbe is what a build records about itself into its site. Its uid
// it cannot tell: inside its user namespace every build is uid 1000; the
// test watches the host uids from outside (watchBuildUIDs).
type buildProbe struct {
	ID     string
	Cgroup string `json:"cgroup"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
}

// deployProbes starts n builds at once, one per project, each sleeping
// sleepMs and recording its uid, its cgroups and when it ran.
func deployProbes(s *server, tok, org string, n, sleepMs int) []string {
	s.t.Helper()
	build := fmt.Sprintf(`const fs=require("fs");const start=Date.now();setTimeout(()=>{`+
		`fs.mkdirSync("dist",{recursive:true});fs.writeFileSync("dist/index.html",JSON.stringify({`+
		`cgroup:fs.readFileSync("/proc/self/cgroup","utf8"),start,end:Date.now()}))},%d)`, sleepMs)
	var ids []string
	for i := range n {
		project := fmt.Sprintf("probe-%d", i)
		r := deployFiles(s, tok, org, project, files(
			"package.json", `{"name":"probe","private":true,"scripts":{"build":"node build.js"}}`,
			"build.js", build))
		ids = append(ids, r.str("deploymentId"))
	}
	return ids
}

// finishedProbes waits for every deployment and reads what its build
// recorded from its site.
func finishedProbes(t *testing.T, s *server, ids []string) []buildProbe {
	t.Helper()
	var probes []buildProbe
	for _, id := range ids {
		st := s.waitFinal(id, 3*time.Minute)
		if st.str("status") != "completed" {
			t.Fatalf("deployment %s: %s\n%s", id, st.body, tail(s.logs.String(), 3000))
		}
		site := s.do("GET", "/", nil, "Host", s.siteHost(id))
		p := buildProbe{ID: id}
		if err := json.Unmarshal(site.body, &p); site.status != 200 || err != nil {
			t.Fatalf("site of %s: %d %s (%v)", id, site.status, site.body, err)
		}
		probes = append(probes, p)
	}
	return probes
}

var buildCgroup = regexp.MustCompile(`:/([^/]+)/b(\d+)$`)

// checkProbes: every build ran in a cgroup of its own below the instance's
// parent, named after one of the instance's uids.
func checkProbes(t *testing.T, name string, probes []buildProbe, parent string, uids []int) {
	t.Helper()
	for _, p := range probes {
		line := firstCgroupLine(p.Cgroup, "pids")
		t.Logf("%s: build %s ran %d ms in %q", name, p.ID, p.End-p.Start, line)
		m := buildCgroup.FindStringSubmatch(line)
		if m == nil || m[1] != parent {
			t.Errorf("%s: build's cgroups %q: want a pids cgroup below %s", name, p.Cgroup, parent)
			continue
		}
		if uid, _ := strconv.Atoi(m[2]); !slices.Contains(uids, uid) {
			t.Errorf("%s: build's cgroup %q is named for a uid not the instance's %v", name, line, uids)
		}
	}
}

// uidWatch records, from the host, the uids of every process in the build
// cgroups below some cgroup parents while it runs.
type uidWatch struct {
	stop chan struct{}
	done chan struct{}
	seen map[string]map[int]bool // parent → uids seen in its build cgroups
	bad  []string                // a process whose uids are not its cgroup's
}

func watchBuildUIDs(parents ...string) *uidWatch {
	w := &uidWatch{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]map[int]bool{}}
	for _, p := range parents {
		w.seen[p] = map[int]bool{}
	}
	go func() {
		defer close(w.done)
		for {
			for _, p := range parents {
				w.sample(p)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

// sample reads the real, effective, saved and filesystem uids of every
// process in parent's build cgroups (b<uid>).
func (w *uidWatch) sample(parent string) {
	for _, dir := range cgroupDirs(parent) {
		subs, _ := filepath.Glob(filepath.Join(dir, "b*"))
		for _, sub := range subs {
			want, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(sub), "b"))
			procs, _ := os.ReadFile(filepath.Join(sub, "cgroup.procs"))
			for _, pid := range strings.Fields(string(procs)) {
				for _, uid := range processUIDs(pid) {
					w.seen[parent][uid] = true
					if uid != want {
						w.bad = append(w.bad, fmt.Sprintf("pid %s in %s runs as uid %d", pid, sub, uid))
					}
				}
			}
		}
	}
}

func (w *uidWatch) finish() {
	close(w.stop)
	<-w.done
}

// processUIDs reads the four uids of a process; none if it is gone.
func processUIDs(pid string) []int {
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			var uids []int
			for _, f := range strings.Fields(rest) {
				n, _ := strconv.Atoi(f)
				uids = append(uids, n)
			}
			return uids
		}
	}
	return nil
}

// checkWatchedUIDs: the host saw builds of both instances, each only ever
// as the instance's own uids.
func checkWatchedUIDs(t *testing.T, w *uidWatch, owned map[string][]int) {
	t.Helper()
	for parent, uids := range owned {
		var seen []int
		for uid := range w.seen[parent] {
			seen = append(seen, uid)
			if !slices.Contains(uids, uid) {
				t.Errorf("a build below %s ran as uid %d, not one of its instance's %v", parent, uid, uids)
			}
		}
		slices.Sort(seen)
		t.Logf("host view: builds below %s ran as uids %v", parent, seen)
		if len(seen) == 0 {
			t.Errorf("no build process seen below %s: the uid check proves nothing", parent)
		}
	}
	if len(w.bad) > 0 {
		t.Errorf("processes in a build cgroup not of its uid: %v", w.bad[:min(5, len(w.bad))])
	}
}

// firstCgroupLine picks the line of controller ctrl (or the v2 line) out
// of a /proc/self/cgroup text.
func firstCgroupLine(text, ctrl string) string {
	for _, line := range strings.Split(text, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && (slices.Contains(strings.Split(f[1], ","), ctrl) || f[0] == "0") {
			return line
		}
	}
	return ""
}

// overlapping reports whether some build of a ran while one of b did.
func overlapping(a, b []buildProbe) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Start < y.End && y.Start < x.End {
				return true
			}
		}
	}
	return false
}

// waitBuildCgroups waits until n build cgroups exist below parent.
func waitBuildCgroups(t *testing.T, parent string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		found := 0
		for _, dir := range cgroupDirs(parent) {
			subs, _ := filepath.Glob(filepath.Join(dir, "b*"))
			found = max(found, len(subs))
		}
		if found >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d builds running below %s", found, n, parent)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// filesOwnedBy counts the entries below root owned by one of uids.
func filesOwnedBy(t *testing.T, root string, uids []int) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished meanwhile
		}
		if fi, err := d.Info(); err == nil && slices.Contains(uids, int(fi.Sys().(*syscall.Stat_t).Uid)) {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkTakenOver: c holds the dead b's uids, b's cgroups are gone, nothing
// below b's sandbox root still belongs to those uids, and a's cgroups are
// untouched.
func checkTakenOver(t *testing.T, a, b *server, bUIDs, cUIDs []int) {
	t.Helper()
	if !slices.Equal(cUIDs, bUIDs) {
		t.Errorf("the new instance claimed %v, want the dead instance's %v (the lowest free)", cUIDs, bUIDs)
	}
	if left := cgroupDirs(b.cgroup); len(left) != 0 {
		t.Errorf("the dead instance's cgroups are still there: %v", left)
	}
	if n := filesOwnedBy(t, b.sandboxRoot, bUIDs); n != 0 {
		t.Errorf("%d files below the dead instance's sandbox root still belong to the uids the new instance builds as", n)
	}
	if len(cgroupDirs(a.cgroup)) == 0 {
		t.Error("the live instance's cgroups were removed")
	}
	t.Logf("after c started: b's cgroup dirs %d, a's %d", len(cgroupDirs(b.cgroup)), len(cgroupDirs(a.cgroup)))
}

// TestNodeID: NODE_ID names the instance in its start log; without it each
// start gets the host name plus a fresh random suffix; a bad one stops the
// start with a clear message.
func TestNodeID(t *testing.T) {
	host, _ := os.Hostname()
	cases := []struct {
		name    string
		env     []string
		wantLog string // regexp for the node_id attribute; "" = start must fail
		wantErr string
	}{
		{"explicit", []string{"NODE_ID=node-7.eu"}, `"node_id":"node-7\.eu"`, ""},
		{"default", []string{"NODE_ID="}, `"node_id":"` + regexp.QuoteMeta(host) + `-[0-9a-f]{8}"`, ""},
		{"space", []string{"NODE_ID=bad id"}, "", `NODE_ID "bad id"`},
		{"slash", []string{"NODE_ID=../x"}, "", `NODE_ID "../x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantLog == "" {
				cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
				cmd.Env = append(os.Environ(), tc.env...)
				out, err := cmd.CombinedOutput()
				if err == nil || !strings.Contains(string(out), tc.wantErr) {
					t.Fatalf("serve with %v: %v, output %q; want a failed start naming %s", tc.env, err, out, tc.wantErr)
				}
				return
			}
			s := startServer(t, tc.env...)
			re := regexp.MustCompile(tc.wantLog)
			s.waitLog(re, 10*time.Second)
			t.Logf("%s: %s", tc.name, re.FindString(s.logs.String()))
		})
	}
	// Two default starts never share an id.
	a, b := startServer(t, "NODE_ID="), startServer(t, "NODE_ID=")
	re := regexp.MustCompile(`"libra-deploy serving","node_id":"([^"]+)"`)
	a.waitLog(re, 10*time.Second)
	b.waitLog(re, 10*time.Second)
	idA, idB := re.FindStringSubmatch(a.logs.String())[1], re.FindStringSubmatch(b.logs.String())[1]
	if idA == idB {
		t.Fatalf("two default starts share node id %s", idA)
	}
}

// checkClaimFds: after builds, an instance holds exactly one descriptor per
// claimed uid plus one for its cgroup parent in the host lock directory (a
// build neither leaks nor drops a claim), and few descriptors overall.
func checkClaimFds(t *testing.T, s *server) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	claims := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && strings.HasPrefix(target, "/run/libra-deploy/") {
			claims++
		}
	}
	t.Logf("instance holds %d descriptors, %d of them host-wide claims", len(fds), claims)
	if claims != 5+1 {
		t.Errorf("%d claim descriptors, want 6 (5 uids and the cgroup parent)", claims)
	}
	if len(fds) > 200 {
		t.Errorf("%d descriptors open after builds: want far fewer than 200", len(fds))
	}
}
