package bwrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultHostLockDir holds the host-wide claims of every provider on the
// host: uids/<uid>.lock per build uid and cgroups/<key>.lock per cgroup
// parent. Every instance on a host must use the same directory. It lives on
// /run, a tmpfs, because a claim means nothing after a reboot.
const DefaultHostLockDir = "/run/libra-deploy"

// errLockHeld says a live process holds the lock.
var errLockHeld = errors.New("held by a live process")

// tryLock takes an exclusive flock on path without waiting. A flock belongs
// to the open file, so it dies with its process, SIGKILL included: a claim
// can never outlive its holder. It returns errLockHeld when another open
// file holds the lock (another process, or another claim in this one), and
// an error wrapping os.ErrNotExist when create is false and there is no
// file: a lock file that never existed says nothing about liveness.
func tryLock(path string, create bool) (*os.File, error) {
	flags := os.O_RDWR | syscall.O_NOFOLLOW
	if create {
		flags |= os.O_CREATE
	}
	for {
		f, err := os.OpenFile(path, flags, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errLockHeld
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// A holder that was done unlinked the file between our open and our
		// flock: we hold a lock nobody else can see. Start over on the path.
		if linked, err := sameFile(f, path); err != nil || linked {
			if err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		}
		f.Close()
	}
}

// sameFile reports whether path still names the file f has open.
func sameFile(f *os.File, path string) (bool, error) {
	open, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("lock: %w", err)
	}
	named, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock: %w", err)
	}
	return os.SameFile(open, named), nil
}

// unlockRemove deletes a lock file and then releases it, in that order, so
// that nobody can take the lock on a file that is about to disappear
// (tryLock checks the name after locking).
func unlockRemove(f *os.File) error {
	err := os.Remove(f.Name())
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return errors.Join(err, f.Close())
}

// prepareHostLockDir creates dir and its subdirectories, private to the
// service's uid: a lock file anyone could open is a lock anyone could hold.
func prepareHostLockDir(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, uidLockDir), filepath.Join(dir, cgroupLockDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("host lock dir: %w", err)
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return fmt.Errorf("host lock dir: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
			return fmt.Errorf("host lock dir %s: not a directory owned by uid %d", d, os.Geteuid())
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("host lock dir: %w", err)
		}
	}
	return nil
}

const (
	uidLockDir    = "uids"
	cgroupLockDir = "cgroups"
)
