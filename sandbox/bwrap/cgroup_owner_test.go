package bwrap

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
)

// TestRemoveDeadSiblings: next to a provider's cgroup parent, only the
// parents whose owner died (a lock file nobody holds) are removed, build
// cgroups and all; a live owner's parent and a parent nobody ever locked
// (another program's) stay.
func TestRemoveDeadSiblings(t *testing.T) {
	needSandbox(t)
	lockDir := newLockDir(t)
	lim := cgroupLimits{memory: 64 << 20, pids: 16}
	name := func(kind string) string { return fmt.Sprintf("libra-sandbox-test-%d-sib-%s", testSlot, kind) }
	cases := []struct {
		kind        string
		lock        bool // a provider made it and took its lock
		ownerDied   bool
		wantRemoved bool
	}{
		{"dead", true, true, true},
		{"live", true, false, false},
		{"unlocked", false, false, false},
	}
	own := newTestParent(t, name("own"), lim)
	if f, err := lockCgroupParent(lockDir, own, "own"); err != nil {
		t.Fatal(err)
	} else {
		defer f.Close()
	}
	parents := map[string]cgroupManager{}
	for _, tc := range cases {
		m := newTestParent(t, name(tc.kind), lim)
		if _, err := m.create("b1"); err != nil {
			t.Fatal(err)
		}
		parents[tc.kind] = m
		if !tc.lock {
			continue
		}
		f, err := lockCgroupParent(lockDir, m, tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		if tc.ownerDied {
			f.Close() // what the kernel does when the owner dies
		} else {
			defer f.Close()
		}
	}
	if err := removeDeadSiblings(lockDir, own, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		_, err := os.Stat(parents[tc.kind].key())
		removed := os.IsNotExist(err)
		t.Logf("%s sibling: removed %v", tc.kind, removed)
		if removed != tc.wantRemoved {
			t.Errorf("%s sibling %s: removed %v, want %v (%v)", tc.kind, parents[tc.kind].key(), removed, tc.wantRemoved, err)
		}
	}
	if _, err := os.Stat(cgroupLockPath(lockDir, parents["dead"].key())); !os.IsNotExist(err) {
		t.Errorf("the dead sibling's lock file is still there: %v", err)
	}
}

// newTestParent makes a cgroup parent that the test removes at the end.
func newTestParent(t *testing.T, name string, lim cgroupLimits) cgroupManager {
	t.Helper()
	m, err := newCgroupManager(name, lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.close(); err != nil {
			t.Error(err)
		}
	})
	return m
}
