// Package buildfile opens files in a tree that untrusted code (a project's
// install and build scripts) could have written, for a service that reads
// them as root.
//
// Such a tree may hold anything a build can create: a FIFO where a lockfile
// was (opening it blocks until a writer comes, forever), a symbolic link to
// /etc/shadow or to a huge file, a device node, a directory swapped for a
// link between a check and a use. Every read goes through here, so that:
//
//   - no symbolic link is followed, at any path component (each directory
//     is opened with O_NOFOLLOW relative to the one before, never by path);
//   - only regular files are opened for reading, and opening never blocks
//     (O_NONBLOCK; the type is checked again on the open descriptor);
//   - a size cap is enforced before anything is read;
//   - reads give up once their context ends.
package buildfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotRegular: the path is a symbolic link, FIFO, socket, device or
	// directory where a regular file was expected.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is larger than the caller's cap.
	ErrTooLarge = errors.New("file too large")
)

const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fileFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
)

// File is a regular file opened by Open. Reads stop at the size it had
// when opened, and fail once the context given to Open ends.
type File struct {
	f    *os.File
	r    io.Reader
	ctx  context.Context
	Size int64
}

// Read reads from the file, returning the context's error once it ends.
func (f *File) Read(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	return f.r.Read(p)
}

// Fd is the open descriptor, for callers that link or stat it.
func (f *File) Fd() int { return int(f.f.Fd()) }

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Open opens rel, a slash-separated path inside dir, as a regular file of at
// most limit bytes (limit < 0: no cap). dir is a path the service chose
// itself; rel is walked one component at a time without following links.
// A missing file gives an error matching fs.ErrNotExist.
func Open(ctx context.Context, dir, rel string, limit int64) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	parent, name, err := openParent(dir, rel)
	if err != nil {
		return nil, err
	}
	defer unix.Close(parent)
	// Checked before the open so that a device node is never opened at
	// all (opening some has side effects), and again after it, on the
	// descriptor, in case the name was swapped in between.
	if err := checkRegular(func(st *unix.Stat_t) error {
		return unix.Fstatat(parent, name, st, unix.AT_SYMLINK_NOFOLLOW)
	}, rel, limit); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(parent, name, fileFlags, 0)
	if err != nil {
		return nil, pathError("open", rel, err)
	}
	var opened unix.Stat_t
	err = checkRegular(func(st *unix.Stat_t) error {
		err := unix.Fstat(fd, st)
		opened = *st
		return err
	}, rel, limit)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	return &File{f: f, r: io.LimitReader(f, opened.Size), ctx: ctx, Size: opened.Size}, nil
}

// ReadFile reads rel inside dir whole, with Open's guarantees.
func ReadFile(ctx context.Context, dir, rel string, limit int64) ([]byte, error) {
	f, err := Open(ctx, dir, rel, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	return b, nil
}

// IsRegular reports whether rel inside dir is a regular file, reached
// through no symbolic link. Missing files, and paths through a link or a
// non-directory, give false without error.
func IsRegular(dir, rel string) (bool, error) {
	parent, name, err := openParent(dir, rel)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNotRegular) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(parent)
	var st unix.Stat_t
	err = unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, pathError("stat", rel, err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFREG, nil
}

// OpenDir opens the directory rel inside dir ("." for dir itself) without
// following a symbolic link at any component.
func OpenDir(dir, rel string) (*os.File, error) {
	fd, err := openDirFd(dir, rel)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// checkRegular runs stat and refuses anything but a regular file of at most
// limit bytes.
func checkRegular(stat func(*unix.Stat_t) error, rel string, limit int64) error {
	var st unix.Stat_t
	if err := stat(&st); err != nil {
		return pathError("stat", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: %w (%s)", rel, ErrNotRegular, kind(st.Mode))
	}
	if limit >= 0 && st.Size > limit {
		return fmt.Errorf("%s: %w (%d bytes, at most %d)", rel, ErrTooLarge, st.Size, limit)
	}
	return nil
}

// openParent opens the directory holding rel and returns it with rel's last
// component.
func openParent(dir, rel string) (int, string, error) {
	rel = filepath.ToSlash(filepath.Clean(filepath.FromSlash(rel)))
	if rel == "." || !filepath.IsLocal(rel) {
		return -1, "", fmt.Errorf("%q is not a file path inside the tree", rel)
	}
	parentRel, name := ".", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		parentRel, name = rel[:i], rel[i+1:]
	}
	fd, err := openDirFd(dir, parentRel)
	return fd, name, err
}

// openDirFd opens dir (a path the service chose; its last component must not
// be a link) and then rel below it, one component at a time.
func openDirFd(dir, rel string) (int, error) {
	rel = filepath.ToSlash(filepath.Clean(filepath.FromSlash(rel)))
	if rel != "." && !filepath.IsLocal(rel) {
		return -1, fmt.Errorf("%q is not a path inside the tree", rel)
	}
	fd, err := unix.Open(dir, dirFlags, 0)
	if err != nil {
		return -1, pathError("open", dir, err)
	}
	if rel == "." {
		return fd, nil
	}
	for _, part := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, part, dirFlags, 0)
		unix.Close(fd)
		if err != nil {
			return -1, pathError("open", rel, err)
		}
		fd = next
	}
	return fd, nil
}

// pathError wraps a system error; a link where a directory or file was
// expected (ELOOP, or ENOTDIR for a link met with O_DIRECTORY) becomes
// ErrNotRegular, so callers can tell "refused" from "broken".
func pathError(op, rel string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("%s %s: %w (a symbolic link)", op, rel, ErrNotRegular)
	}
	if errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%s %s: %w (a path component is not a directory)", op, rel, ErrNotRegular)
	}
	return fmt.Errorf("%s %s: %w", op, rel, err)
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "not a file"
}
