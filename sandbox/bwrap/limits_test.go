package bwrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

func TestLimits(t *testing.T) {
	needSandbox(t)
	cfg := shared.cfg
	cases := []struct {
		name    string
		args    []string
		timeout time.Duration
		// wantErr, if set, must match with errors.Is; otherwise err must be
		// nil and the exit code non-zero.
		wantErr  error
		wantNote string // a "sandbox:" line the build log must show
		maxTook  time.Duration
		check    func(t *testing.T, work string)
	}{
		{
			name: "fork bomb stopped by the pids limit",
			// Every copy stays alive, so the tree grows until forks fail and
			// then holds until the timeout kills all of it at once. The
			// command itself becomes a sleep by exec, which needs no fork:
			// had it to fork its sleep, on a busy machine the tree could
			// fill first and the command end early, with no timeout.
			args:     []string{"sh", "-c", `f() { f & f & sleep 100; }; f & exec sleep 100`},
			timeout:  3 * time.Second,
			wantErr:  ErrTimeout,
			wantNote: "sandbox: process limit reached",
			maxTook:  10 * time.Second,
		},
		{
			name:     "memory hog killed",
			args:     []string{"node", "-e", `const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));`},
			timeout:  60 * time.Second,
			wantNote: "sandbox: out of memory",
			maxTook:  30 * time.Second,
		},
		{
			name:    "file larger than the file size limit fails",
			args:    []string{"sh", "-c", "head -c 16M /dev/zero > big.bin"},
			timeout: 30 * time.Second,
			maxTook: 10 * time.Second,
			check: func(t *testing.T, work string) {
				fi, err := os.Stat(filepath.Join(work, "big.bin"))
				if err != nil || fi.Size() > cfg.FileSizeLimit {
					t.Errorf("big.bin: %v, size %d > limit %d", err, fi.Size(), cfg.FileSizeLimit)
				}
			},
		},
		{
			name:     "disk filled with many small files killed",
			args:     []string{"sh", "-c", "i=0; while :; do i=$((i+1)); head -c 4M /dev/zero > f$i || exit 9; done"},
			timeout:  60 * time.Second,
			wantNote: "sandbox: disk limit exceeded",
			maxTook:  30 * time.Second,
			check: func(t *testing.T, work string) {
				// Caught within one check interval (200 ms here) of passing
				// the limit; what a build writes in that time depends on the
				// disk: 143 MiB past it was seen here, so allow 256 MiB.
				u, err := measureTree(work)
				if err != nil || u.bytes > cfg.DiskLimit+256<<20 {
					t.Errorf("project grew to %d bytes (limit %d): %v", u.bytes, cfg.DiskLimit, err)
				}
				// Free the space, or every later command fails the check too.
				matches, _ := filepath.Glob(filepath.Join(work, "f*"))
				for _, m := range matches {
					os.Remove(m)
				}
			},
		},
		{
			name:     "endless loop killed by the timeout",
			args:     []string{"sh", "-c", "while :; do :; done"},
			timeout:  time.Second,
			wantErr:  context.DeadlineExceeded,
			wantNote: "sandbox: timed out",
			maxTook:  5 * time.Second,
		},
		{
			name:    "background daemon does not outlive its command",
			args:    []string{"sh", "-c", "(sleep 1000 &) ; exit 4"},
			timeout: 10 * time.Second,
			maxTook: 5 * time.Second,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb, work := newSandbox(t, shared, "org-limits")
			r := run(t, sb, libra.Command{Args: tc.args, Timeout: tc.timeout})
			if tc.wantErr != nil {
				if !errors.Is(r.err, tc.wantErr) {
					t.Fatalf("err = %v, want %v; output:\n%s", r.err, tc.wantErr, tail(r.out()))
				}
			} else if r.err != nil || r.code == 0 {
				t.Fatalf("code %d err %v, want a failing exit code and no error; output:\n%s", r.code, r.err, tail(r.out()))
			}
			if tc.wantNote != "" && !strings.Contains(r.out(), tc.wantNote) {
				t.Errorf("build log lacks %q:\n%s", tc.wantNote, tail(r.out()))
			}
			if r.took > tc.maxTook {
				t.Errorf("took %s, want under %s", r.took, tc.maxTook)
			}
			if tc.check != nil {
				tc.check(t, work)
			}
			// Nothing survives the command, and the sandbox still works.
			if procs, err := sb.(*sandbox).cg.procs(); err != nil || len(procs) != 0 {
				t.Errorf("processes left in the cgroup: %v %v", procs, err)
			}
			mustOK(t, sh(t, sb, "echo still alive"), "command after the limit")
		})
	}
}

func TestRlimitsInside(t *testing.T) {
	needSandbox(t)
	sb, _ := newSandbox(t, shared, "org-rlimit")
	r := sh(t, sb, "cat /proc/self/limits")
	mustOK(t, r, "limits")
	cfg := shared.cfg
	want := map[string]string{
		"Max file size":      itoa(cfg.FileSizeLimit),
		"Max cpu time":       itoa(int64(cfg.CPUTimeLimit / time.Second)),
		"Max core file size": "0",
		"Max open files":     itoa(int64(cfg.OpenFilesLimit)),
		"Max processes":      itoa(int64(cfg.PidsLimit)),
		// Address space stays unlimited: Vite's bundlers need it.
		"Max address space": "unlimited",
	}
	for name, soft := range want {
		found := false
		for _, line := range r.lines {
			if strings.HasPrefix(line, name+" ") {
				found = true
				if f := strings.Fields(strings.TrimPrefix(line, name)); len(f) == 0 || f[0] != soft {
					t.Errorf("%s: %q, want soft limit %s", name, line, soft)
				}
			}
		}
		if !found {
			t.Errorf("%s missing from /proc/self/limits", name)
		}
	}
}

func TestCancelKillsTree(t *testing.T) {
	needSandbox(t)
	sb, _ := newSandbox(t, shared, "org-cancel")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	t0 := time.Now()
	_, err := sb.Run(ctx, libra.Command{Args: []string{"sh", "-c", "sleep 100 & sleep 100"}, Timeout: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Fatalf("cancel took %s", took)
	}
	if procs, err := sb.(*sandbox).cg.procs(); err != nil || len(procs) != 0 {
		t.Fatalf("processes left: %v %v", procs, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 30 {
		lines = append([]string{"…"}, lines[len(lines)-30:]...)
	}
	return strings.Join(lines, "\n")
}
