package bwrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// testSecret is put into the test process's environment; no command in any
// sandbox may ever see it.
const (
	testSecretKey   = "LIBRA_TEST_SECRET_TOKEN"
	testSecretValue = "s3cr3t-d0-not-leak-4a1f"
	// probeCommand makes the test binary, bound into the sandbox as the
	// helper, try system calls from inside (see probe_test.go).
	probeCommand = "libra-test-probe"
)

// shared is the provider most tests use; set up once because each New copies
// the test binary and cleans cgroups.
var (
	shared     *Provider
	sharedRoot string // holds state, caches and work dirs, all o+x
	skipReason string
)

func TestMain(m *testing.M) {
	// The test binary doubles as the helper inside sandboxes.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case HelperCommand:
			os.Exit(HelperMain(os.Args[2:]))
		case probeCommand:
			os.Exit(probeMain(os.Args[2:]))
		}
	}
	os.Setenv(testSecretKey, testSecretValue)
	code := func() int {
		if os.Geteuid() != 0 {
			skipReason = "the local sandbox needs root (run the tests as root, as CI does)"
			return m.Run()
		}
		if _, err := exec.LookPath("bwrap"); err != nil {
			fmt.Fprintln(os.Stderr, "bubblewrap is not installed: apt-get install -y bubblewrap")
			return 1
		}
		root, err := os.MkdirTemp("", "libra-bwrap-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(root)
		if err := os.Chmod(root, 0o711); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		sharedRoot = root
		// Other test processes on this machine (a colleague's go test ./...)
		// may run these tests at the same time: each process takes a slot,
		// which gives it uids and cgroups nobody else touches.
		slot, release, err := takeSlot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer release()
		testSlot = slot
		// A run that was killed (a test timeout) left its cgroups; the slot
		// lock says nobody uses them now.
		if err := removeCgroupsNamed(fmt.Sprintf("libra-sandbox-test-%d-*", slot)); err != nil {
			fmt.Fprintln(os.Stderr, "remove a killed run's cgroups:", err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared, err = New(ctx, testConfig(root, "shared", 0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "New:", err)
			return 1
		}
		code := m.Run()
		if err := shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "Close:", err)
			code = 1
		}
		return code
	}()
	os.Exit(code)
}

// testSlot is this test process's slot (see takeSlot).
var testSlot int

// takeSlot locks the first free of a few machine-wide slots.
func takeSlot() (int, func(), error) {
	for n := range 32 {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("libra-bwrap-test-slot-%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return n, func() { f.Close() }, nil
	}
	return 0, nil, fmt.Errorf("no free test slot")
}

// testConfig gives tests small limits so that hogs die fast, and a uid range
// and cgroup of their own (per slot, and offset within it) so that neither a
// service nor another test process on the same machine is disturbed.
func testConfig(root, name string, offset int) Config {
	return Config{
		StateDir:          filepath.Join(root, name, "state"),
		CacheDir:          filepath.Join(root, name, "cache"),
		UIDBase:           300000 + testSlot*100 + offset,
		UIDCount:          3,
		CgroupParent:      fmt.Sprintf("libra-sandbox-test-%d-%s", testSlot, name),
		MemoryLimit:       512 << 20,
		PidsLimit:         128,
		DiskLimit:         256 << 20,
		FileSizeLimit:     8 << 20,
		TmpSize:           64 << 20,
		CPUTimeLimit:      20 * time.Second,
		DiskCheckInterval: 200 * time.Millisecond,
	}
}

func needSandbox(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// newWorkDir makes a project directory reachable by the build uids.
func newWorkDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(sharedRoot, "work-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// removeCgroupsNamed removes every cgroup whose name matches pattern,
// wherever an earlier run's own cgroup was (some hosts move each process
// into a new memory cgroup, so it need not be ours): a few levels below
// every cgroup mount.
func removeCgroupsNamed(pattern string) error {
	var errs []error
	for _, depth := range []string{"", "*", "*/*", "*/*/*"} {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", depth, pattern))
		for _, d := range dirs {
			errs = append(errs, removeCgroupTree(d))
		}
	}
	return errors.Join(errs...)
}

// removeCgroupTree kills what runs in dir and below and removes it all,
// children first.
func removeCgroupTree(dir string) error {
	subs, err := subdirs(dir)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if err := removeCgroupTree(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	procs := filepath.Join(dir, "cgroup.procs")
	if err := killLoop(func() ([]int, error) { return readPids(procs) }); err != nil {
		return err
	}
	return rmdirRetry(dir)
}
