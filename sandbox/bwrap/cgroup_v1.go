package bwrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupV1 manages one directory per controller (memory, pids, and freezer
// and cpu when present), each below the service's own cgroup in that
// hierarchy.
type cgroupV1 struct {
	own     map[string]string // controller → the service's own cgroup directory
	name    string            // the parent's name below own
	parents map[string]string // controller → parent cgroup directory
	lim     cgroupLimits
}

func newCgroupV1(own map[string]string, parent string, lim cgroupLimits) (*cgroupV1, error) {
	m := v1Parent(own, parent, lim)
	for c, p := range m.parents {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup v1 %s: %w", c, err)
		}
	}
	return m, nil
}

// v1Parent describes the parent name below own without creating anything.
func v1Parent(own map[string]string, name string, lim cgroupLimits) *cgroupV1 {
	m := &cgroupV1{own: own, name: name, parents: map[string]string{}, lim: lim}
	for c, dir := range own {
		m.parents[c] = filepath.Join(dir, name)
	}
	return m
}

// key is the pids hierarchy's parent directory: pids is always present.
func (m *cgroupV1) key() string { return m.parents["pids"] }

func (m *cgroupV1) other(name string) cgroupManager { return v1Parent(m.own, name, m.lim) }

func (m *cgroupV1) siblings() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, dir := range m.own {
		names, err := subdirs(filepath.Join(dir, filepath.Dir(m.name)))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			rel := filepath.Join(filepath.Dir(m.name), n)
			if rel != m.name && !seen[rel] {
				seen[rel] = true
				out = append(out, rel)
			}
		}
	}
	return out, nil
}

func (m *cgroupV1) version() string { return "v1" }

func (m *cgroupV1) create(name string) (cgroup, error) {
	g := m.group(name)
	for c, dir := range g.dirs {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			_ = g.remove()
			return nil, fmt.Errorf("cgroup v1 %s: %w", c, err)
		}
	}
	mem := strconv.FormatInt(m.lim.memory, 10)
	set := func(c, file, value string) error {
		return writeCgroupFile(filepath.Join(g.dirs[c], file), value)
	}
	steps := []func() error{
		func() error { return set("memory", "memory.limit_in_bytes", mem) },
		func() error {
			// With swap accounting the memory+swap limit must match, or a
			// hog would spill into swap instead of being killed.
			if _, err := os.Stat(filepath.Join(g.dirs["memory"], "memory.memsw.limit_in_bytes")); err != nil {
				return nil
			}
			return set("memory", "memory.memsw.limit_in_bytes", mem)
		},
		func() error { return set("pids", "pids.max", strconv.Itoa(m.lim.pids)) },
		func() error {
			if _, ok := g.dirs["cpu"]; !ok {
				return nil
			}
			if m.lim.cpuQuota > 0 {
				const period = 100000
				if err := set("cpu", "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
					return err
				}
				if err := set("cpu", "cpu.cfs_quota_us", strconv.Itoa(int(m.lim.cpuQuota*period))); err != nil {
					return err
				}
			}
			if m.lim.cpuWeight > 0 {
				return set("cpu", "cpu.shares", strconv.Itoa(max(2, m.lim.cpuWeight*1024/100)))
			}
			return nil
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

func (m *cgroupV1) group(name string) *cgroupV1Group {
	g := &cgroupV1Group{dirs: map[string]string{}}
	for c, p := range m.parents {
		g.dirs[c] = filepath.Join(p, name)
	}
	return g
}

func (m *cgroupV1) removeStale() error {
	names := map[string]bool{}
	for _, p := range m.parents {
		sub, err := subdirs(p)
		if err != nil {
			return err
		}
		for _, n := range sub {
			names[n] = true
		}
	}
	var errs []error
	for n := range names {
		errs = append(errs, m.group(n).remove())
	}
	return errors.Join(errs...)
}

type cgroupV1Group struct {
	dirs map[string]string // controller → directory
}

func (g *cgroupV1Group) add(pid int) error {
	for _, dir := range g.dirs {
		if err := writeCgroupFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// procs lists the members of the pids hierarchy: every process is added to
// all hierarchies together, and pids is always present.
func (g *cgroupV1Group) procs() ([]int, error) {
	return readPids(filepath.Join(g.dirs["pids"], "cgroup.procs"))
}

// kill freezes the cgroup first when the freezer hierarchy exists, so that a
// fork bomb cannot outrun the kill loop, then SIGKILLs and thaws: frozen
// processes only die once thawed.
func (g *cgroupV1Group) kill() error {
	// An empty cgroup stays empty: only members' children join it.
	if pids, err := g.procs(); err == nil && len(pids) == 0 {
		return nil
	}
	fz, ok := g.dirs["freezer"]
	if ok {
		if _, err := os.Stat(fz); err != nil {
			ok = false
		}
	}
	if ok {
		state := filepath.Join(fz, "freezer.state")
		if err := writeCgroupFile(state, "FROZEN"); err == nil {
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				b, err := os.ReadFile(state)
				if err != nil || strings.TrimSpace(string(b)) == "FROZEN" {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if pids, err := g.procs(); err == nil {
				for _, pid := range pids {
					_ = killPid(pid)
				}
			}
			if err := writeCgroupFile(state, "THAWED"); err != nil {
				return err
			}
		}
	}
	return killLoop(g.procs)
}

func (g *cgroupV1Group) events() (cgroupEvents, error) {
	return cgroupEvents{
		oomKills: readKeyed(filepath.Join(g.dirs["memory"], "memory.oom_control"), "oom_kill"),
		pidsMax:  readKeyed(filepath.Join(g.dirs["pids"], "pids.events"), "max"),
	}, nil
}

func (g *cgroupV1Group) remove() error {
	if err := g.kill(); err != nil {
		return err
	}
	var errs []error
	for _, dir := range g.dirs {
		errs = append(errs, rmdirRetry(dir))
	}
	return errors.Join(errs...)
}

func (m *cgroupV1) close() error {
	errs := []error{m.removeStale()}
	for _, p := range m.parents {
		errs = append(errs, rmdirRetry(p))
	}
	return errors.Join(errs...)
}
