package bwrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

func TestNodeRunsAndOutputStreams(t *testing.T) {
	needSandbox(t)
	sb, _ := newSandbox(t, shared, "org-node")

	r := run(t, sb, libra.Command{Args: []string{"node", "-e", `console.log("hello from node " + (6 * 7)); console.error("to stderr")`}})
	mustOK(t, r, "node -e")
	if !strings.Contains(r.out(), "hello from node 42") || !strings.Contains(r.out(), "to stderr") {
		t.Fatalf("node output missing, got:\n%s", r.out())
	}

	// Lines arrive while the command runs, not at its end.
	var stamps []time.Duration
	t0 := time.Now()
	code, err := sb.Run(context.Background(), libra.Command{
		Args:    []string{"sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done"},
		Timeout: 10 * time.Second,
		Output:  func(string) { stamps = append(stamps, time.Since(t0)) },
	})
	if err != nil || code != 0 {
		t.Fatalf("streaming command: %d %v", code, err)
	}
	if len(stamps) != 3 || stamps[2]-stamps[0] < 400*time.Millisecond {
		t.Fatalf("lines not streamed as produced: %v", stamps)
	}

	// Exit codes pass through; a missing command is 127, not an error.
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM)},
		{[]string{"no-such-command-xyz"}, 127},
		{[]string{"true"}, 0},
	} {
		r := run(t, sb, libra.Command{Args: tc.args})
		if r.err != nil || r.code != tc.code {
			t.Errorf("%v: code %d err %v, want %d (output %q)", tc.args, r.code, r.err, tc.code, r.out())
		}
	}
}

func TestIsolation(t *testing.T) {
	needSandbox(t)
	sb, work := newSandbox(t, shared, "org-iso")

	// Something on the host that no build may see: a world-readable
	// directory next to the project, the provider's state, the host's home.
	outside := filepath.Join(sharedRoot, "outside-secret")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "data"), []byte("host data"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name      string
		script    string
		wantOK    bool
		mustHave  []string
		mustNotIn []string
	}{
		{name: "shadow unreadable", script: "cat /etc/shadow", wantOK: false},
		{name: "etc holds only what is needed", script: "ls -A /etc", wantOK: true,
			mustHave: []string{"passwd", "hosts", "ssl"}, mustNotIn: []string{"shadow", "sudoers", "ssh", "hostname"}},
		{name: "no secret in any environment", wantOK: true,
			script:    `env; for f in /proc/[0-9]*/environ; do tr '\0' '\n' < $f; done; echo done`,
			mustHave:  []string{"done", "CI=1"},
			mustNotIn: []string{testSecretValue, testSecretKey}},
		{name: "pid 1 environment empty", wantOK: true, script: `wc -c < /proc/1/environ`, mustHave: []string{"0"}},
		{name: "pid 1 command line names no host path", wantOK: true,
			script: `tr '\0' ' ' < /proc/1/cmdline; echo`, mustNotIn: []string{sharedRoot, work}},
		{name: "outside directory invisible", script: "ls " + outside + " || cat " + outside + "/data", wantOK: false,
			mustNotIn: []string{"host data"}},
		{name: "state dir invisible", script: "ls " + shared.cfg.StateDir, wantOK: false},
		{name: "host root not visible", wantOK: true, script: "ls -A /",
			mustNotIn: []string{"root", "var", "srv", "opt", "boot", "mnt"}},
		{name: "usr/local hidden", wantOK: true, script: "ls -A /usr/local | wc -l", mustHave: []string{"0"}},
		{name: "runs as unprivileged uid", wantOK: true, script: "id -u; grep CapEff /proc/self/status",
			mustHave: []string{"1000", "0000000000000000"}},
		{name: "hostname is the sandbox's", wantOK: true, script: "cat /proc/sys/kernel/hostname", mustHave: []string{"sandbox"}},
		{name: "only sandbox processes visible", wantOK: true, script: "ls /proc | grep -c '^[0-9]'"},
		{name: "cannot create user namespaces", script: "unshare -U true", wantOK: false},
		// One plain command, no pipeline or redirection: while the shell
		// sets those up it holds extra descriptors itself (a pipe's ends,
		// a saved stdout), which the listing would catch.
		{name: "no inherited descriptors", wantOK: true, script: "find /proc/$$/fd -mindepth 1 -printf '%f '",
			mustHave: []string{"0 1 2 "}, mustNotIn: []string{"3", "4", "5", "6", "7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := sh(t, sb, tc.script)
			if r.err != nil {
				t.Fatalf("run: %v", r.err)
			}
			if (r.code == 0) != tc.wantOK {
				t.Fatalf("exit %d, want success=%v; output:\n%s", r.code, tc.wantOK, r.out())
			}
			for _, s := range tc.mustHave {
				if !strings.Contains(r.out(), s) {
					t.Errorf("output lacks %q:\n%s", s, r.out())
				}
			}
			for _, s := range tc.mustNotIn {
				if strings.Contains(r.out(), s) {
					t.Errorf("output contains %q:\n%s", s, r.out())
				}
			}
		})
	}

	// Few processes: bwrap's init, the shell, grep, ls.
	r := sh(t, sb, "ls /proc | grep -c '^[0-9]'")
	if n, err := strconv.Atoi(strings.TrimSpace(r.out())); err != nil || n > 6 {
		t.Errorf("sandbox sees %q processes", r.out())
	}
}

func TestWritableOnlyOwnDirs(t *testing.T) {
	needSandbox(t)
	sb, work := newSandbox(t, shared, "org-write")
	cases := []struct {
		path     string
		writable bool
	}{
		{ProjectDir + "/ok", true},
		{"/tmp/ok", true},
		{HomeDir + "/ok", true},
		{CacheMount + "/ok", true},
		{"/dev/shm/ok", true},
		{"/ok", false},
		{"/usr/ok", false},
		{"/usr/bin/ok", false},
		{"/usr/local/ok", false},
		{"/etc/ok", false},
		{"/etc/passwd", false},
		{"/work/ok", false},
		{"/run/libra/ok", false},
		{"/home/ok", false},
		{"/proc/sys/kernel/hostname", false},
	}
	for _, tc := range cases {
		r := sh(t, sb, "echo x > "+tc.path)
		if r.err != nil {
			t.Fatalf("%s: %v", tc.path, r.err)
		}
		if (r.code == 0) != tc.writable {
			t.Errorf("write %s: exit %d, want writable=%v (%s)", tc.path, r.code, tc.writable, r.out())
		}
	}
	// The project file belongs to the build uid on the host while the
	// sandbox lives.
	fi, err := os.Stat(filepath.Join(work, "ok"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid < uint32(shared.cfg.UIDBase) || uid >= uint32(shared.cfg.UIDBase+shared.cfg.UIDCount) {
		t.Errorf("file written by the build is owned by %d, not a build uid", uid)
	}
}

func TestSeccompFromInside(t *testing.T) {
	needSandbox(t)
	sb, _ := newSandbox(t, shared, "org-seccomp")
	r := run(t, sb, libra.Command{Args: []string{helperInSandbox, probeCommand}})
	mustOK(t, r, "probe")
	got := map[string]int{}
	for _, l := range r.lines {
		name, errno, ok := strings.Cut(l, " ")
		if n, err := strconv.Atoi(errno); ok && err == nil {
			got[name] = n
		}
	}
	want := map[string]syscall.Errno{
		"getpid":            0,
		"ptrace":            syscall.EPERM,
		"unshare":           syscall.EPERM,
		"mount":             syscall.EPERM,
		"keyctl":            syscall.EPERM,
		"bpf":               syscall.EPERM,
		"io_uring_setup":    syscall.ENOSYS,
		"userfaultfd":       syscall.EPERM,
		"perf_event_open":   syscall.EPERM,
		"clone3":            syscall.ENOSYS,
		"clone_newnet":      syscall.EPERM,
		"setns":             syscall.EPERM,
		"open_by_handle_at": syscall.EPERM,
	}
	for name, errno := range want {
		if g, ok := got[name]; !ok || syscall.Errno(g) != errno {
			t.Errorf("%s: errno %d, want %d (%v)", name, g, int(errno), errno)
		}
	}
}

func TestStartFailureIsAnError(t *testing.T) {
	needSandbox(t)
	sb, work := newSandbox(t, shared, "org-startfail")
	// bwrap cannot bind a project directory that is gone.
	if err := os.RemoveAll(work); err != nil {
		t.Fatal(err)
	}
	r := sh(t, sb, "echo should not run")
	if !errors.Is(r.err, ErrStart) {
		t.Fatalf("err = %v, want ErrStart", r.err)
	}
	if len(r.lines) != 0 {
		t.Fatalf("bwrap's own messages leaked into the build log: %q", r.lines)
	}
	if strings.Contains(r.err.Error(), "should not run") {
		t.Fatalf("command ran: %v", r.err)
	}
}
