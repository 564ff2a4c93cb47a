package bwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// uidSlot is one build uid this process holds host-wide. The claim is a
// flock on uids/<uid>.lock in the host lock directory, held for as long as
// the provider lives: two providers on one host, whatever their settings,
// can never run builds as the same uid, and a killed provider's uids free
// themselves.
type uidSlot struct {
	uid  int
	f    *os.File
	node string
}

// slotRecord is the content of a slot's lock file: who holds it (for an
// operator asking who uses uid X), and which paths a live sandbox handed
// to the uid. A holder that dies mid-build leaves those paths owned by the
// uid; the next holder takes them back before a build of its own runs as
// the uid, so it can never reach a previous build's files.
type slotRecord struct {
	Node  string       `json:"node"`
	PID   int          `json:"pid"`
	Paths []handedPath `json:"paths,omitempty"`
}

// handedPath is a directory a sandbox gave to the uid, and the owner it
// goes back to.
type handedPath struct {
	Path string `json:"path"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
}

// slotRequest says which uids a provider wants.
type slotRequest struct {
	dir  string // the host lock directory
	base int
	span int // how many uids from base may be considered
	want int // how many to claim
	node string
	// exact claims exactly [base, base+want) or nothing: an explicit uid
	// range is the operator's choice and must not drift.
	exact bool
}

// claimUIDs claims req.want slots, lowest uids first, skipping those a live
// process holds. It claims all or none.
func claimUIDs(req slotRequest, logger *slog.Logger) ([]*uidSlot, error) {
	var got []*uidSlot
	for uid := req.base; uid < req.base+req.span && len(got) < req.want; uid++ {
		s, err := claimSlot(req.dir, uid, req.node)
		if err == nil {
			got = append(got, s)
			continue
		}
		if req.exact {
			releaseSlots(got)
			return nil, fmt.Errorf("build uid %d (SANDBOX_UID_BASE range %d-%d): %w", uid, req.base, req.base+req.want-1, err)
		}
		if !errors.Is(err, errLockHeld) {
			logger.Warn("skipping a build uid that cannot be taken over", "uid", uid, "err", err)
		}
	}
	if len(got) < req.want {
		releaseSlots(got)
		return nil, fmt.Errorf("only %d of %d build uids free in %d-%d: other instances on this host hold the rest", len(got), req.want, req.base, req.base+req.span-1)
	}
	return got, nil
}

// claimSlot takes one uid: locks its file, takes back what a dead holder
// left to the uid, and records itself as the holder.
func claimSlot(dir string, uid int, node string) (*uidSlot, error) {
	path := filepath.Join(dir, uidLockDir, strconv.Itoa(uid)+".lock")
	f, err := tryLock(path, true)
	if errors.Is(err, errLockHeld) {
		return nil, fmt.Errorf("%w (%s)", err, describeHolder(path))
	}
	if err != nil {
		return nil, err
	}
	s := &uidSlot{uid: uid, f: f, node: node}
	if err := s.takeBack(); err != nil {
		f.Close()
		return nil, fmt.Errorf("build uid %d: take back a dead holder's files: %w", uid, err)
	}
	if err := s.record(nil); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// describeHolder reads who holds a lock file, for an error message.
func describeHolder(path string) string {
	var rec slotRecord
	data, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(data, &rec) != nil {
		return "holder unknown"
	}
	return fmt.Sprintf("node %s, pid %d", rec.Node, rec.PID)
}

// takeBack undoes what the previous holder's unfinished sandboxes left: it
// kills the uid's processes, then hands every file the uid owns in the
// recorded paths back to the recorded owner.
func (s *uidSlot) takeBack() error {
	data, err := readAll(s.f)
	if err != nil || len(data) == 0 {
		return err
	}
	var rec slotRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		// Torn by a crash mid-write: nothing to rely on but the uid.
		return killUID(s.uid)
	}
	if len(rec.Paths) == 0 {
		return nil
	}
	if err := killUID(s.uid); err != nil {
		return err
	}
	var errs []error
	for _, p := range rec.Paths {
		errs = append(errs, chownOwnedBy(p.Path, s.uid, p.UID, p.GID))
	}
	return errors.Join(errs...)
}

func readAll(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read slot: %w", err)
	}
	buf := make([]byte, fi.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && len(buf) > 0 {
		return nil, fmt.Errorf("read slot: %w", err)
	}
	return buf, nil
}

// record replaces the slot file's content. Writing in place is enough: the
// file must survive the process, not the host (it lives on a tmpfs). A
// write torn by a kill is harmless too: create records before it hands
// anything to the uid, and Destroy clears the record only after taking
// everything back, so at both moments the uid holds nothing.
func (s *uidSlot) record(paths []handedPath) error {
	data, err := json.Marshal(slotRecord{Node: s.node, PID: os.Getpid(), Paths: paths})
	if err != nil {
		return fmt.Errorf("build uid %d: %w", s.uid, err)
	}
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("build uid %d: record: %w", s.uid, err)
	}
	if _, err := s.f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("build uid %d: record: %w", s.uid, err)
	}
	return nil
}

func releaseSlots(slots []*uidSlot) {
	for _, s := range slots {
		s.f.Close()
	}
}

// uidList formats claimed uids for a log line.
func uidList(slots []*uidSlot) string {
	ids := make([]string, len(slots))
	for i, s := range slots {
		ids[i] = strconv.Itoa(s.uid)
	}
	return strings.Join(ids, ",")
}

// chownOwnedBy gives every entry of the tree at path that belongs to uid
// (as owner or group) to newUID:newGID. Entries of anyone else stay as
// they are: a newer build may already own them under another uid. A
// missing path is fine: its owner cleaned it up.
func chownOwnedBy(path string, uid, newUID, newGID int) error {
	root, err := openTreeRoot(path)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(root)
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if int(st.Uid) == uid || int(st.Gid) == uid {
		if err := unix.Fchown(root, newUID, newGID); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	err = walkTree(root, func(dirfd int, name, rel string, st *unix.Stat_t) error {
		if int(st.Uid) != uid && int(st.Gid) != uid {
			return nil
		}
		err := unix.Fchownat(dirfd, name, newUID, newGID, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("chown %q: %w", rel, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}
