package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// maxCopyDepth bounds copyTree's recursion (one open directory pair per
// level): no real node_modules comes near it.
const maxCopyDepth = 256

const (
	copyDirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	copyFileFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
)

// copyTree recreates the tree at src as dst: directories with their
// permissions, symbolic links as links (never followed; .bin depends on
// them), and regular files hard-linked when link is set, copied otherwise
// or when linking fails. Sockets, pipes and devices are skipped: a package
// has no business shipping one.
//
// src was written by a project's install scripts, whose processes may
// still be changing it. The walk goes from directory descriptor to
// directory descriptor (O_NOFOLLOW), never by path, so a directory swapped
// for a link is not followed. A file is linked by name without following
// a link, and the type is checked on what was linked, in dst, which only
// the service can write: whatever was swapped in, what stays saved is a
// regular file that nothing but the service can change. Linking costs three
// system calls per file; the node_modules of a typical app has 20 000.
func copyTree(src, dst string, link bool) error {
	sfd, err := unix.Open(src, copyDirFlags, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: src, Err: err}
	}
	if err := os.Mkdir(dst, dirMode(st.Mode)); err != nil {
		return err
	}
	dfd, err := unix.Open(dst, copyDirFlags, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dst, Err: err}
	}
	defer unix.Close(dfd)
	return copyDir(sfd, dfd, ".", link, 0)
}

// dirMode is the mode a copied directory gets: its own, and always usable
// by its owner.
func dirMode(mode uint32) os.FileMode { return os.FileMode(mode&0o777 | 0o700) }

// uncached are the directories below node_modules that are never copied
// in or out of the org cache: bun's package cache, which the sandbox keeps
// there (sandbox/bwrap's environment) so that bun can hard-link from it;
// it is as large as node_modules itself.
var uncached = map[string]bool{"./.cache/bun": true}

// copyDir copies the entries of the directory sfd into dfd; rel names sfd
// in errors.
func copyDir(sfd, dfd int, rel string, link bool, depth int) error {
	if depth >= maxCopyDepth {
		return fmt.Errorf("%s: directory tree deeper than %d", rel, maxCopyDepth)
	}
	entries, err := readDirAt(sfd)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", rel, err)
	}
	for _, e := range entries {
		name := e.Name()
		switch t := e.Type(); {
		case t.IsDir() && uncached[rel+"/"+name]:
			continue
		case t.IsDir():
			err = copySubdir(sfd, dfd, name, rel+"/"+name, link, depth)
		case t&fs.ModeSymlink != 0:
			err = copySymlink(sfd, dfd, name)
		case t.IsRegular():
			err = linkOrCopy(sfd, dfd, name, link)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s/%s: %w", rel, name, err)
		}
	}
	return nil
}

// readDirAt lists the directory fd without moving fd's own offset.
func readDirAt(fd int) ([]fs.DirEntry, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(dup)
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	return f.ReadDir(-1)
}

// copySubdir copies the directory name, unless it has been replaced by
// something else since it was listed (then it is skipped).
func copySubdir(sfd, dfd int, name, rel string, link bool, depth int) error {
	sub, err := unix.Openat(sfd, name, copyDirFlags, 0)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(sub)
	var st unix.Stat_t
	if err := unix.Fstat(sub, &st); err != nil {
		return err
	}
	if err := unix.Mkdirat(dfd, name, uint32(dirMode(st.Mode))); err != nil {
		return err
	}
	dsub, err := unix.Openat(dfd, name, copyDirFlags, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dsub)
	return copyDir(sub, dsub, rel, link, depth+1)
}

func copySymlink(sfd, dfd int, name string) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(sfd, name, buf)
	if errors.Is(err, unix.EINVAL) {
		return nil // no longer a link
	}
	if err != nil {
		return err
	}
	return unix.Symlinkat(string(buf[:n]), dfd, name)
}

// linkOrCopy links (or copies) the regular file name. A linked file is the
// project's own inode: it is frozen (see freezeAt) before anything else
// can run.
func linkOrCopy(sfd, dfd int, name string, link bool) error {
	if link {
		// Without AT_SYMLINK_FOLLOW: a name swapped for a link is linked
		// as that link, never followed, and removed again below.
		if err := unix.Linkat(sfd, name, dfd, name, 0); err == nil {
			return keepRegularAt(dfd, name)
		} else if errors.Is(err, unix.ENOENT) {
			return nil
		}
	}
	return copyRegularAt(sfd, dfd, name)
}

// keepRegularAt freezes name in dfd if it is a regular file and removes it
// otherwise.
func keepRegularAt(dfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return unix.Unlinkat(dfd, name, 0)
	}
	return freezeAt(dfd, name, st.Mode)
}

// freezeAt gives a saved file to the service, so that the build uid, which
// still reaches the same inode through the project, is only "other" to it,
// and takes away the write bits others had (and set-id bits). The owner's
// write bit is kept: it is the service's now, and a restore that had to add
// it back would cost a chmod per file.
func freezeAt(dfd int, name string, mode uint32) error {
	if err := unix.Fchownat(dfd, name, os.Geteuid(), os.Getegid(), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	const unsafeBits = 0o022 | unix.S_ISUID | unix.S_ISGID | unix.S_ISVTX
	if mode&unsafeBits == 0 {
		return nil
	}
	return unix.Fchmodat(dfd, name, mode&0o777&^0o022, 0)
}

// copyRegularAt copies name's content into a new file in dfd. Opening never
// blocks or follows a link, and anything but a regular file is skipped:
// checked before the open, so that a device node is never opened (opening
// some has side effects), and again on the descriptor.
func copyRegularAt(sfd, dfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	fd, err := unix.Openat(sfd, name, copyFileFlags, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENXIO) {
		return nil
	}
	if err != nil {
		return err
	}
	in := os.NewFile(uintptr(fd), name)
	defer in.Close()
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	ofd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, st.Mode&0o777)
	if err != nil {
		return err
	}
	out := os.NewFile(uintptr(ofd), name)
	if _, err := io.Copy(out, io.LimitReader(in, st.Size)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
