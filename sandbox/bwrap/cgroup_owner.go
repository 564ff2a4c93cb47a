package bwrap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// A provider removes everything below its cgroup parent at start and at
// Close, so two live providers must never share a parent. Each holds a
// host-wide lock on its parent for its whole life; the lock also tells the
// others when the owner of a parent next to theirs has died.

// cgroupLockPath names the lock of the cgroup parent whose directory is key.
// Hashed: a cgroup path can be longer than a file name may be.
func cgroupLockPath(lockDir, key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(lockDir, cgroupLockDir, hex.EncodeToString(sum[:16])+".lock")
}

// lockCgroupParent claims cg's parent for this process, or says which live
// instance already has it.
func lockCgroupParent(lockDir string, cg cgroupManager, node string) (*os.File, error) {
	path := cgroupLockPath(lockDir, cg.key())
	f, err := tryLock(path, true)
	if errors.Is(err, errLockHeld) {
		return nil, fmt.Errorf("cgroup parent %s is in use by another live instance (%s): give each instance its own SANDBOX_CGROUP, or leave it unset",
			cg.key(), describeHolder(path))
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup parent %s: %w", cg.key(), err)
	}
	data, err := json.Marshal(slotRecord{Node: node, PID: os.Getpid()})
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt(data, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cgroup parent %s: record owner: %w", cg.key(), err)
	}
	return f, nil
}

// removeDeadSiblings removes the cgroup parents next to cg's whose owner
// died: a lock file exists for them (a provider like this one made them)
// and nobody holds it. A parent without a lock file belongs to something
// that does not take these locks (another program, an older version): it
// is left alone, whatever its name.
func removeDeadSiblings(lockDir string, cg cgroupManager, logger *slog.Logger) error {
	names, err := cg.siblings()
	if err != nil {
		return fmt.Errorf("list cgroups next to %s: %w", cg.key(), err)
	}
	var errs []error
	for _, name := range names {
		errs = append(errs, removeIfDead(lockDir, cg.other(name), logger))
	}
	return errors.Join(errs...)
}

func removeIfDead(lockDir string, dead cgroupManager, logger *slog.Logger) error {
	f, err := tryLock(cgroupLockPath(lockDir, dead.key()), false)
	if errors.Is(err, errLockHeld) || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := dead.close(); err != nil {
		f.Close() // the lock file stays: the next start tries again
		return fmt.Errorf("remove a dead instance's cgroups: %w", err)
	}
	logger.Info("removed the cgroups of a dead instance", "cgroup_parent", dead.key())
	return unlockRemove(f)
}
