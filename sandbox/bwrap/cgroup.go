package bwrap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupLimits are applied to every sandbox's cgroup.
type cgroupLimits struct {
	memory    int64
	pids      int
	cpuQuota  float64 // cores, 0 = none
	cpuWeight int     // 1..10000, 0 = kernel default
}

// cgroupManager creates per-sandbox cgroups below one parent it owns. Two
// implementations exist because most hosts run the unified hierarchy (v2)
// while some, like the machine this was written on, still run v1.
type cgroupManager interface {
	version() string
	// create makes the cgroup name below the parent, with the limits set.
	create(name string) (cgroup, error)
	// removeStale kills and removes every cgroup below the parent: they are
	// leftovers of a process that died without cleaning up.
	removeStale() error
	// close kills and removes every sandbox cgroup and the parent.
	close() error
	// key names the parent host-wide: its directory (in the pids
	// hierarchy on v1).
	key() string
	// siblings lists the cgroups at the parent's level, by name relative
	// to the service's own cgroup: other instances' parents among them.
	siblings() ([]string, error)
	// other is the manager of another parent at the same level, without
	// creating anything: to remove a dead instance's cgroups.
	other(name string) cgroupManager
}

// cgroup is one sandbox's cgroup. The cgroup is the unit of killing: every
// process the sandbox starts is in it, whatever it does with sessions,
// process groups or double forks.
type cgroup interface {
	add(pid int) error
	procs() ([]int, error)
	// kill SIGKILLs every process in the cgroup and returns once it is empty.
	kill() error
	events() (cgroupEvents, error)
	// remove kills what is left and deletes the cgroup; a missing cgroup is
	// not an error, so remove can be repeated.
	remove() error
}

// cgroupEvents are counters the kernel keeps; a rise during a command
// explains a failure better than an exit code.
type cgroupEvents struct {
	oomKills int64 // processes killed by the OOM killer
	pidsMax  int64 // forks refused at the pids limit
}

// killWait bounds how long kill waits for processes to leave the cgroup.
// SIGKILLed processes leave in milliseconds; a process stuck in
// uninterruptible I/O may take longer, and is reported rather than waited for
// forever.
const killWait = 10 * time.Second

// newCgroupManager detects the host's cgroup layout and prepares the parent
// cgroup named parent below the service's own cgroup.
func newCgroupManager(parent string, lim cgroupLimits) (cgroupManager, error) {
	mounts, err := readCgroupMounts()
	if err != nil {
		return nil, err
	}
	own, err := readOwnCgroups()
	if err != nil {
		return nil, err
	}
	needCPU := lim.cpuQuota > 0 || lim.cpuWeight > 0

	// The unified hierarchy counts only if it actually carries the
	// controllers: on a hybrid host (cgroup2 mounted at
	// /sys/fs/cgroup/unified next to v1 hierarchies) it has none.
	if m, ok := mounts.v2(); ok {
		if path, ok := own["2"]; ok {
			dir := m.dirFor(path)
			ctrls, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
			if err == nil && hasWords(string(ctrls), "memory", "pids") {
				if needCPU && !hasWords(string(ctrls), "cpu") {
					return nil, fmt.Errorf("cgroup v2: cpu controller not available in %s", dir)
				}
				return newCgroupV2(dir, m.mountpoint, parent, lim)
			}
		}
	}

	want := []string{"memory", "pids", "freezer", "cpu"}
	dirs := map[string]string{}
	for _, c := range want {
		m, ok := mounts.v1(c)
		if !ok {
			continue
		}
		path, ok := own[c]
		if !ok {
			continue
		}
		dirs[c] = m.dirFor(path)
	}
	for _, c := range []string{"memory", "pids"} {
		if _, ok := dirs[c]; !ok {
			return nil, fmt.Errorf("no usable cgroup: neither cgroup v2 with memory and pids nor a cgroup v1 %s hierarchy", c)
		}
	}
	if needCPU {
		if _, ok := dirs["cpu"]; !ok {
			return nil, errors.New("cgroup v1: CPU quota or weight configured but no cpu hierarchy")
		}
	} else {
		delete(dirs, "cpu")
	}
	return newCgroupV1(dirs, parent, lim)
}

// cgroupMount is one cgroup filesystem from /proc/self/mountinfo.
type cgroupMount struct {
	root       string // the part of the hierarchy mounted here
	mountpoint string
	fstype     string
	options    []string // super options: v1 controller names live here
}

// dirFor maps a path from /proc/self/cgroup to a directory under the mount.
func (m cgroupMount) dirFor(path string) string {
	rel := path
	if m.root != "/" {
		rel = strings.TrimPrefix(path, m.root)
	}
	return filepath.Join(m.mountpoint, rel)
}

type cgroupMounts []cgroupMount

func (ms cgroupMounts) v2() (cgroupMount, bool) {
	for _, m := range ms {
		if m.fstype == "cgroup2" {
			return m, true
		}
	}
	return cgroupMount{}, false
}

func (ms cgroupMounts) v1(controller string) (cgroupMount, bool) {
	for _, m := range ms {
		if m.fstype != "cgroup" {
			continue
		}
		for _, o := range m.options {
			if o == controller {
				return m, true
			}
		}
	}
	return cgroupMount{}, false
}

func readCgroupMounts() (cgroupMounts, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return parseCgroupMounts(string(data)), nil
}

// parseCgroupMounts picks the cgroup filesystems out of a mountinfo file.
func parseCgroupMounts(data string) cgroupMounts {
	var out cgroupMounts
	for line := range strings.Lines(data) {
		pre, post, ok := strings.Cut(strings.TrimSpace(line), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || (b[0] != "cgroup" && b[0] != "cgroup2") {
			continue
		}
		out = append(out, cgroupMount{
			root:       unescapeMountinfo(a[3]),
			mountpoint: unescapeMountinfo(a[4]),
			fstype:     b[0],
			options:    strings.Split(b[2], ","),
		})
	}
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) that the
// kernel uses in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// readOwnCgroups maps each v1 controller name, and "2" for the unified
// hierarchy, to this process's cgroup path.
func readOwnCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroup: %w", err)
	}
	return parseOwnCgroups(string(data)), nil
}

// parseOwnCgroups parses /proc/self/cgroup.
func parseOwnCgroups(data string) map[string]string {
	own := map[string]string{}
	for line := range strings.Lines(data) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			own["2"] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	return own
}

func hasWords(s string, words ...string) bool {
	have := strings.Fields(s)
	for _, w := range words {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// writeCgroupFile writes one value to an existing cgroup control file. The
// kernel rejects bad values at write time, so the error says which file and
// value.
func writeCgroupFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("cgroup: write %q to %s: %w", value, path, werr)
	}
	if cerr != nil {
		return fmt.Errorf("cgroup: close %s: %w", path, cerr)
	}
	return nil
}

// readPids parses a cgroup.procs file. A missing file means an already
// removed cgroup, which holds no processes.
func readPids(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// readKeyed reads one counter from a flat keyed file such as memory.events
// ("oom_kill 3"). A missing file or key counts as zero: older kernels lack
// some counters, and a counter is only used to explain a failure.
func readKeyed(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if ok && string(k) == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			return n
		}
	}
	return 0
}

// rmdirRetry removes a cgroup directory, waiting out the short window in
// which killed processes still count as members.
func rmdirRetry(dir string) error {
	deadline := time.Now().Add(killWait)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("cgroup: remove %s: %w", dir, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killLoop SIGKILLs every process listed by list until the list stays empty.
// Without a freezer a fork bomb can fork between the read and the kill, so it
// goes round until nothing is left; the pids limit bounds each round.
func killLoop(list func() ([]int, error)) error {
	deadline := time.Now().Add(killWait)
	for {
		pids, err := list()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: %d processes still alive %s after SIGKILL", len(pids), killWait)
		}
		for _, pid := range pids {
			_ = killPid(pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// subdirs lists the child cgroups of dir.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// killPid SIGKILLs one process; ESRCH (already gone) is not worth reporting.
func killPid(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	return nil
}
