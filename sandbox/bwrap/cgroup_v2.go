package bwrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// cgroupV2 manages sandbox cgroups in the unified hierarchy, below
// <own cgroup>/<parent>.
type cgroupV2 struct {
	own    string // the service's own cgroup directory
	name   string // the parent's name below own
	parent string
	lim    cgroupLimits
	ctrls  string // "+memory +pids [+cpu]" for cgroup.subtree_control
}

// serviceLeaf is where the service moves itself when its own cgroup must
// start delegating controllers: cgroup v2 forbids a non-root cgroup to both
// hold processes and hand controllers to children (the "no internal
// processes" rule). This is what a systemd unit with Delegate=yes expects.
const serviceLeaf = "service"

func newCgroupV2(own, mountpoint, parent string, lim cgroupLimits) (*cgroupV2, error) {
	m := &cgroupV2{own: own, name: parent, parent: filepath.Join(own, parent), lim: lim, ctrls: "+memory +pids"}
	if lim.cpuQuota > 0 || lim.cpuWeight > 0 {
		m.ctrls += " +cpu"
	}
	if err := m.delegate(own, own == mountpoint); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.parent, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	if err := writeCgroupFile(filepath.Join(m.parent, "cgroup.subtree_control"), m.ctrls); err != nil {
		return nil, err
	}
	return m, nil
}

// delegate enables the controllers for own's children, moving the service's
// processes into a leaf first when the kernel insists.
func (m *cgroupV2) delegate(own string, isRoot bool) error {
	ctl := filepath.Join(own, "cgroup.subtree_control")
	err := writeCgroupFile(ctl, m.ctrls)
	if err == nil || isRoot || !errors.Is(err, syscall.EBUSY) {
		return err
	}
	leaf := filepath.Join(own, serviceLeaf)
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	pids, err := readPids(filepath.Join(own, "cgroup.procs"))
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := writeCgroupFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(pid)); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("cgroup v2: move service out of %s: %w", own, err)
		}
	}
	return writeCgroupFile(ctl, m.ctrls)
}

func (m *cgroupV2) version() string { return "v2" }

func (m *cgroupV2) key() string { return m.parent }

func (m *cgroupV2) other(name string) cgroupManager {
	return &cgroupV2{own: m.own, name: name, parent: filepath.Join(m.own, name), lim: m.lim, ctrls: m.ctrls}
}

func (m *cgroupV2) siblings() ([]string, error) {
	names, err := subdirs(filepath.Join(m.own, filepath.Dir(m.name)))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if rel := filepath.Join(filepath.Dir(m.name), n); rel != m.name {
			out = append(out, rel)
		}
	}
	return out, nil
}

func (m *cgroupV2) create(name string) (cgroup, error) {
	g := &cgroupV2Group{dir: filepath.Join(m.parent, name)}
	if err := os.Mkdir(g.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	set := func(file, value string, optional bool) error {
		p := filepath.Join(g.dir, file)
		if optional {
			if _, err := os.Stat(p); err != nil {
				return nil
			}
		}
		return writeCgroupFile(p, value)
	}
	steps := []func() error{
		func() error { return set("memory.max", strconv.FormatInt(m.lim.memory, 10), false) },
		// No swap: a hog must be killed, not slowed down to a crawl.
		func() error { return set("memory.swap.max", "0", true) },
		// On OOM kill the whole sandbox rather than one process, so that a
		// half-dead build does not limp on.
		func() error { return set("memory.oom.group", "1", true) },
		func() error { return set("pids.max", strconv.Itoa(m.lim.pids), false) },
		func() error {
			if m.lim.cpuQuota <= 0 {
				return nil
			}
			const period = 100000
			return set("cpu.max", fmt.Sprintf("%d %d", int(m.lim.cpuQuota*period), period), false)
		},
		func() error {
			if m.lim.cpuWeight <= 0 {
				return nil
			}
			return set("cpu.weight", strconv.Itoa(m.lim.cpuWeight), false)
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			_ = g.remove()
			return nil, err
		}
	}
	return g, nil
}

func (m *cgroupV2) removeStale() error {
	names, err := subdirs(m.parent)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, (&cgroupV2Group{dir: filepath.Join(m.parent, n)}).remove())
	}
	return errors.Join(errs...)
}

type cgroupV2Group struct{ dir string }

func (g *cgroupV2Group) add(pid int) error {
	return writeCgroupFile(filepath.Join(g.dir, "cgroup.procs"), strconv.Itoa(pid))
}

func (g *cgroupV2Group) procs() ([]int, error) {
	return readPids(filepath.Join(g.dir, "cgroup.procs"))
}

// kill uses cgroup.kill (Linux 5.14+), which kills atomically, even a
// forking tree; older kernels get freeze, kill, thaw.
func (g *cgroupV2Group) kill() error {
	// A missing or empty cgroup stays empty: only members' children join.
	if pids, err := g.procs(); err == nil && len(pids) == 0 {
		return nil
	}
	if err := writeCgroupFile(filepath.Join(g.dir, "cgroup.kill"), "1"); err != nil {
		freeze := filepath.Join(g.dir, "cgroup.freeze")
		if writeCgroupFile(freeze, "1") == nil {
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) && readKeyed(filepath.Join(g.dir, "cgroup.events"), "frozen") != 1 {
				time.Sleep(time.Millisecond)
			}
			if pids, err := g.procs(); err == nil {
				for _, pid := range pids {
					_ = killPid(pid)
				}
			}
			_ = writeCgroupFile(freeze, "0")
		}
	}
	return killLoop(g.procs)
}

func (g *cgroupV2Group) events() (cgroupEvents, error) {
	return cgroupEvents{
		oomKills: readKeyed(filepath.Join(g.dir, "memory.events"), "oom_kill"),
		pidsMax:  readKeyed(filepath.Join(g.dir, "pids.events"), "max"),
	}, nil
}

func (g *cgroupV2Group) remove() error {
	if err := g.kill(); err != nil {
		return err
	}
	return rmdirRetry(g.dir)
}

func (m *cgroupV2) close() error {
	return errors.Join(m.removeStale(), rmdirRetry(m.parent))
}
