package bwrap

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The project, home and cache trees are written by untrusted code, and the
// service walks them as root: to read the output, to measure disk use, and to
// hand ownership back. Every walk therefore goes through directory file
// descriptors with O_NOFOLLOW, never through path strings, so that a symlink
// planted anywhere in the tree (or swapped in during a walk) can never lead
// root outside it.

// maxTreeDepth bounds recursion, and with it the number of directory
// descriptors one walk holds open.
const maxTreeDepth = 1024

var errTreeTooDeep = fmt.Errorf("directory tree deeper than %d levels", maxTreeDepth)

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openTreeRoot opens a directory whose path the service chose itself (the
// project directory, a cache directory). The last component must not be a
// symlink.
func openTreeRoot(path string) (int, error) {
	fd, err := unix.Open(path, dirFlags, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

// openBelow opens the directory rel (clean, local, already validated) below
// rootfd one component at a time, refusing symlinks at every step.
func openBelow(rootfd int, rel string) (int, error) {
	fd, err := unix.Dup(rootfd)
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	unix.CloseOnExec(fd)
	if rel == "." {
		return fd, nil
	}
	for _, part := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, part, dirFlags, 0)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", rel, err)
		}
		fd = next
	}
	return fd, nil
}

// visitFunc sees one entry of a walk: dirfd is the directory holding it, name
// its name there, rel its path from the walk's root. It is called before the
// walk descends into a directory.
type visitFunc func(dirfd int, name, rel string, st *unix.Stat_t) error

// walkTree calls visit for every entry below dirfd, in name order, without
// following symlinks. Entries that vanish during the walk are skipped: a
// concurrent npm install deletes files all the time.
func walkTree(dirfd int, visit visitFunc) error {
	return walkAt(dirfd, "", 0, visit)
}

func walkAt(dirfd int, rel string, depth int, visit visitFunc) error {
	if depth >= maxTreeDepth {
		return errTreeTooDeep
	}
	names, err := readDirNames(dirfd)
	if err != nil {
		return fmt.Errorf("read directory %q: %w", displayRel(rel), err)
	}
	for _, name := range names {
		childRel := name
		if rel != "" {
			childRel = rel + "/" + name
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("stat %q: %w", childRel, err)
		}
		if err := visit(dirfd, name, childRel, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		fd, err := unix.Openat(dirfd, name, dirFlags, 0)
		if err != nil {
			// Gone, or replaced by something that is not a directory.
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				continue
			}
			return fmt.Errorf("open %q: %w", childRel, err)
		}
		err = walkAt(fd, childRel, depth+1, visit)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

func displayRel(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// readDirNames lists a directory by descriptor, sorted.
func readDirNames(dirfd int) ([]string, error) {
	fd, err := unix.Dup(dirfd)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// chownTree gives the directory at path and everything below it to uid:gid,
// symlinks included (their own ownership, not their targets'). Entries the
// walk's stat shows already owned by uid:gid are left alone: giving a
// project back after a build whose node_modules went into the org cache
// (which makes every saved file the service's) then costs a stat per file,
// not a chown.
func chownTree(path string, uid, gid int) error {
	root, err := openTreeRoot(path)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	if err := unix.Fchown(root, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	err = walkTree(root, func(dirfd int, name, rel string, st *unix.Stat_t) error {
		if int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		err := unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
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

// treeUsage is what a tree occupies on disk.
type treeUsage struct {
	bytes int64 // allocated blocks, so sparse files count for what they use
	files int   // every inode: files, directories, symlinks
}

func (u treeUsage) add(o treeUsage) treeUsage {
	return treeUsage{bytes: u.bytes + o.bytes, files: u.files + o.files}
}

// measureTree sums the disk use of the tree at path. A hard link is counted
// once. A missing tree uses nothing.
func measureTree(path string) (treeUsage, error) {
	root, err := openTreeRoot(path)
	if errors.Is(err, unix.ENOENT) {
		return treeUsage{}, nil
	}
	if err != nil {
		return treeUsage{}, err
	}
	defer unix.Close(root)
	var u treeUsage
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err == nil {
		u.bytes += st.Blocks * 512
		u.files++
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	err = walkTree(root, func(_ int, _, _ string, st *unix.Stat_t) error {
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		u.bytes += st.Blocks * 512
		u.files++
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("measure %s: %w", path, err)
	}
	return u, nil
}
