package bwrap

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slotTestBase is far from every range real builds or other tests use: the
// claim tests never start a process as these uids, except takeBack's, which
// kills what it started.
const slotTestBase = 610000

func newLockDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "locks")
	if err := prepareHostLockDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestClaimUIDs(t *testing.T) {
	b := slotTestBase
	cases := []struct {
		name     string
		held     []int // claimed by another holder first
		exact    bool
		span     int
		want     int
		wantUIDs []int
		wantErr  string
	}{
		{"pool, all free", nil, false, 10, 3, []int{b, b + 1, b + 2}, ""},
		{"pool skips what others hold", []int{b, b + 2}, false, 10, 3, []int{b + 1, b + 3, b + 4}, ""},
		{"pool too small: all or nothing", []int{b + 1}, false, 3, 3, nil, "only 2 of 3 build uids free"},
		{"exact range, all free", nil, true, 3, 3, []int{b, b + 1, b + 2}, ""},
		{"exact range, one held: names the holder", []int{b + 2}, true, 3, 3, nil, "node other-node"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := newLockDir(t)
			for _, uid := range tc.held {
				other, err := claimSlot(dir, uid, "other-node")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { other.f.Close() })
			}
			req := slotRequest{dir: dir, base: b, span: tc.span, want: tc.want, node: "me", exact: tc.exact}
			slots, err := claimUIDs(req, slog.New(slog.DiscardHandler))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("claim: %v, want an error with %q", err, tc.wantErr)
				}
				checkClaimable(t, dir, b, b+tc.span, tc.held)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, s := range slots {
				got = append(got, s.uid)
			}
			t.Logf("claimed %v with %v held elsewhere", got, tc.held)
			if !slices.Equal(got, tc.wantUIDs) {
				t.Fatalf("claimed %v, want %v", got, tc.wantUIDs)
			}
			for _, uid := range got {
				if _, err := claimSlot(dir, uid, "late"); !errors.Is(err, errLockHeld) {
					t.Fatalf("uid %d claimed twice: %v", uid, err)
				}
			}
			releaseSlots(slots)
			checkClaimable(t, dir, b, b+tc.span, tc.held)
		})
	}
}

// checkClaimable fails unless every uid in [from, to) but held can be
// claimed: nothing was left claimed by a failed or released claim.
func checkClaimable(t *testing.T, dir string, from, to int, held []int) {
	t.Helper()
	for uid := from; uid < to; uid++ {
		if slices.Contains(held, uid) {
			continue
		}
		s, err := claimSlot(dir, uid, "check")
		if err != nil {
			t.Fatalf("uid %d still claimed: %v", uid, err)
		}
		s.f.Close()
	}
}

// TestSlotFreedByKilledHolder: a claim is a flock, which the kernel drops
// when its process dies, SIGKILL included. The holder here is a real
// process: a shell that takes the lock with flock(1) and becomes sleep,
// keeping the locked descriptor.
func TestSlotFreedByKilledHolder(t *testing.T) {
	dir := newLockDir(t)
	uid := slotTestBase + 50
	path := filepath.Join(dir, uidLockDir, strconv.Itoa(uid)+".lock")
	holder := exec.Command("sh", "-c", `exec 9<>"$0" && flock -n 9 && exec sleep 60`, path)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := claimSlot(dir, uid, "me")
		if errors.Is(err, errLockHeld) {
			break
		}
		if err == nil {
			s.f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holder never took the slot: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	holder.Process.Signal(syscall.SIGKILL)
	holder.Wait()
	s, err := claimSlot(dir, uid, "me")
	if err != nil {
		t.Fatalf("slot of a killed holder not free: %v", err)
	}
	s.f.Close()
}

// TestLockRemovedWhileWaiting: a lock file removed by its holder is not a
// lock anyone holds; tryLock must not hand out the unlinked file.
func TestLockRemovedWhileWaiting(t *testing.T) {
	path := filepath.Join(newLockDir(t), cgroupLockDir, "x.lock")
	first, err := tryLock(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tryLock(path, true); !errors.Is(err, errLockHeld) {
		t.Fatalf("second lock: %v, want errLockHeld", err)
	}
	if err := unlockRemove(first); err != nil {
		t.Fatal(err)
	}
	if _, err := tryLock(path, false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock without a file: %v, want ErrNotExist", err)
	}
	again, err := tryLock(path, true)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}

// TestTakeBackFromDeadHolder: a holder that died mid-build left its uid a
// process and files in the paths it recorded. The next holder kills the
// process and takes back exactly the uid's files there, without following
// a symlink out of the tree and without touching anyone else's files.
func TestTakeBackFromDeadHolder(t *testing.T) {
	needSandbox(t)
	dir := newLockDir(t)
	uid, other := slotTestBase+60, slotTestBase+61
	tree, outside := t.TempDir(), filepath.Join(t.TempDir(), "outside")
	entries := []leftover{
		{"", nil, uid, 0, ""},
		{"file", func(p string) error { return os.WriteFile(p, []byte("left"), 0o600) }, uid, 0, ""},
		{"sub", func(p string) error { return os.Mkdir(p, 0o700) }, uid, 0, ""},
		{"sub/deep", func(p string) error { return os.WriteFile(p, nil, 0o600) }, uid, 0, ""},
		{"newer-build", func(p string) error { return os.WriteFile(p, nil, 0o600) }, other, other, ""},
		{"link", func(p string) error { return os.Symlink(outside, p) }, uid, 0, outside},
	}
	plantLeftovers(t, tree, outside, uid, entries)
	exited := startAsUID(t, uid)

	dead, err := claimSlot(dir, uid, "dead-node")
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.record([]handedPath{{Path: tree, UID: 0, GID: 0}, {Path: filepath.Join(tree, "gone"), UID: 0, GID: 0}}); err != nil {
		t.Fatal(err)
	}
	dead.f.Close() // the holder dies

	next, err := claimSlot(dir, uid, "next-node")
	if err != nil {
		t.Fatalf("claim a dead holder's uid: %v", err)
	}
	defer next.f.Close()
	select {
	case err := <-exited:
		t.Logf("the dead holder's process ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a process of the dead holder's uid is still alive")
	}
	for _, e := range entries {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(tree, e.rel), &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != e.wantAfter || int(st.Gid) != e.wantAfter {
			t.Errorf("%q owned by %d:%d after take-back, want %d", e.rel, st.Uid, st.Gid, e.wantAfter)
		}
		if e.followedTo != "" {
			if err := syscall.Stat(e.followedTo, &st); err != nil || int(st.Uid) != uid {
				t.Errorf("take-back followed a symlink to %s: now owned by %d (%v)", e.followedTo, st.Uid, err)
			}
		}
	}
	if rec := describeHolder(next.f.Name()); rec != "node next-node, pid "+strconv.Itoa(os.Getpid()) {
		t.Errorf("slot record after take-back: %s", rec)
	}
}

// leftover is one entry a dead holder's build left in a recorded tree.
type leftover struct {
	rel        string
	make       func(path string) error
	owner      int // before
	wantAfter  int
	followedTo string // a symlink's target, which must keep its owner
}

// plantLeftovers creates the entries below tree, and outside it a file of
// uid's that a symlink among them points to.
func plantLeftovers(t *testing.T, tree, outside string, uid int, entries []leftover) {
	t.Helper()
	if err := os.WriteFile(outside, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(outside, uid, uid); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(tree, e.rel)
		if e.make != nil {
			if err := e.make(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Lchown(p, e.owner, e.owner); err != nil {
			t.Fatal(err)
		}
	}
}

// startAsUID starts a long sleep as uid; the channel reports its end.
func startAsUID(t *testing.T, uid int) <-chan error {
	t.Helper()
	left := exec.Command("sleep", "60")
	left.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { left.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- left.Wait() }()
	return exited
}
