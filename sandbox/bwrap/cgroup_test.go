package bwrap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseCgroupLayouts(t *testing.T) {
	cases := []struct {
		name      string
		mountinfo string
		self      string
		wantV2    string            // directory of the own v2 cgroup, "" if no v2 mount
		wantV1    map[string]string // controller → own directory
	}{
		{
			name: "unified (most hosts)",
			mountinfo: "25 20 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n" +
				"26 20 0:23 / /proc rw - proc proc rw\n",
			self:   "0::/system.slice/libra.service\n",
			wantV2: "/sys/fs/cgroup/system.slice/libra.service",
		},
		{
			name: "hybrid v1 (this project's machines)",
			mountinfo: "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
				"34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
				"38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n" +
				"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
			self:   "8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n",
			wantV2: "/sys/fs/cgroup/unified",
			wantV1: map[string]string{
				"memory": "/sys/fs/cgroup/memory/process_api/abc",
				"pids":   "/sys/fs/cgroup/pids",
				"cpu":    "/sys/fs/cgroup/cpu",
			},
		},
		{
			name: "v1 in a container with a non-root mount and combined controllers",
			mountinfo: "50 40 0:40 /docker/x /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n" +
				"51 40 0:41 /docker/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
			self: "3:cpu,cpuacct:/docker/x\n2:memory:/docker/x/sub\n",
			wantV1: map[string]string{
				"memory":  "/sys/fs/cgroup/memory/sub",
				"cpu":     "/sys/fs/cgroup/cpu,cpuacct",
				"cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
			},
		},
		{
			name:      "escaped mount point",
			mountinfo: `60 40 0:50 / /sys/fs/my\040cgroup rw - cgroup2 cgroup2 rw` + "\n",
			self:      "0::/a\n",
			wantV2:    "/sys/fs/my cgroup/a",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mounts := parseCgroupMounts(tc.mountinfo)
			own := parseOwnCgroups(tc.self)
			got := ""
			if m, ok := mounts.v2(); ok {
				got = m.dirFor(own["2"])
			}
			if got != tc.wantV2 {
				t.Errorf("v2 dir %q, want %q", got, tc.wantV2)
			}
			for c, want := range tc.wantV1 {
				m, ok := mounts.v1(c)
				if !ok {
					t.Errorf("%s: no mount", c)
					continue
				}
				if got := m.dirFor(own[c]); got != want {
					t.Errorf("%s: %q, want %q", c, got, want)
				}
			}
		})
	}
}

// TestCgroupLimitsWritten checks, on this host's real hierarchy, that a
// sandbox cgroup carries the configured limits.
func TestCgroupLimitsWritten(t *testing.T) {
	needSandbox(t)
	sb, _ := newSandbox(t, shared, "org-cg")
	cfg := shared.cfg
	switch g := sb.(*sandbox).cg.(type) {
	case *cgroupV1Group:
		expectFile(t, filepath.Join(g.dirs["memory"], "memory.limit_in_bytes"), itoa(cfg.MemoryLimit))
		expectFile(t, filepath.Join(g.dirs["pids"], "pids.max"), itoa(int64(cfg.PidsLimit)))
	case *cgroupV2Group:
		expectFile(t, filepath.Join(g.dir, "memory.max"), itoa(cfg.MemoryLimit))
		expectFile(t, filepath.Join(g.dir, "pids.max"), itoa(int64(cfg.PidsLimit)))
	default:
		t.Fatalf("unknown cgroup type %T", g)
	}
	// The command's processes are members while it runs, all of them the
	// build uid's.
	done := make(chan result, 1)
	go func() { done <- sh(t, sb, "sleep 1.5 & sleep 1.5; wait") }()
	var procs []int
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && len(procs) < 3; time.Sleep(20 * time.Millisecond) {
		procs, _ = sb.(*sandbox).cg.procs()
	}
	if len(procs) < 3 {
		t.Fatalf("cgroup members while running: %v, want bwrap, its init, the shell and sleeps", procs)
	}
	uid := sb.(*sandbox).uid
	for _, pid := range procs {
		st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue // exited meanwhile
		}
		if !strings.Contains(string(st), "\nUid:\t"+strconv.Itoa(uid)+"\t") {
			t.Errorf("cgroup member %d is not the build uid's", pid)
		}
	}
	mustOK(t, <-done, "sleep")
}

func expectFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != want+"\n" {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

func TestCgroupCPUSettings(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(sharedRoot, "cpu", 60)
	cfg.CPUQuota = 0.5
	cfg.CPUWeight = 50
	p, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}()
	sb, _ := newSandbox(t, p, "org-cpu")
	switch g := sb.(*sandbox).cg.(type) {
	case *cgroupV1Group:
		expectFile(t, filepath.Join(g.dirs["cpu"], "cpu.cfs_quota_us"), "50000")
		expectFile(t, filepath.Join(g.dirs["cpu"], "cpu.shares"), "512")
	case *cgroupV2Group:
		expectFile(t, filepath.Join(g.dir, "cpu.max"), "50000 100000")
		expectFile(t, filepath.Join(g.dir, "cpu.weight"), "50")
	}
	mustOK(t, sh(t, sb, "true"), "run under a CPU quota")
	if err := sb.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveLeftoverTestCgroups: what a killed test run leaves (a cgroup
// parent with a child holding a live process) is found and removed by the
// next run's TestMain.
func TestRemoveLeftoverTestCgroups(t *testing.T) {
	needSandbox(t)
	name := fmt.Sprintf("libra-sandbox-test-leftover-%d", os.Getpid())
	cg, err := newCgroupManager(name, cgroupLimits{memory: 64 << 20, pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cg.create("b1")
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { sleeper.Wait(); close(exited) }()
	if err := g.add(sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	before := leftoverDirs(name)
	if err := removeCgroupsNamed(name); err != nil {
		t.Fatal(err)
	}
	after := leftoverDirs(name)
	t.Logf("cgroup dirs named %s: %d before, %d after", name, len(before), len(after))
	if len(before) == 0 || len(after) != 0 {
		t.Fatalf("before %v, after %v", before, after)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		sleeper.Process.Kill()
		t.Error("the process in the leftover cgroup still runs")
	}
}

func leftoverDirs(name string) []string {
	var out []string
	for _, depth := range []string{"", "*", "*/*", "*/*/*"} {
		d, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", depth, name))
		out = append(out, d...)
	}
	return out
}
