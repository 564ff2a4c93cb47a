package remote

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Pack writes dir as a gzipped tar of its directories and regular files.
// Links and special files stay behind: sync never makes them, and a link
// would point at this host's paths, which mean nothing in the sandbox.
func Pack(dir string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("pack project: %w", err)
	}
	defer root.Close()
	var buf bytes.Buffer
	// BestSpeed: the archive lives for one transfer; CPU is the scarcer.
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	err = fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		return packEntry(root, tw, p, e)
	})
	if err != nil {
		return nil, fmt.Errorf("pack project: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack project: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("pack project: %w", err)
	}
	return buf.Bytes(), nil
}

func packEntry(root *os.Root, tw *tar.Writer, p string, e fs.DirEntry) error {
	if e.IsDir() {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755})
	}
	if !e.Type().IsRegular() {
		return nil
	}
	f, err := root.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return err // swapped for something else since it was listed
	}
	mode := int64(0o644)
	if fi.Mode()&0o111 != 0 {
		mode = 0o755
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: fi.Size()}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, fi.Size())
	return err
}

// ErrArchiveTooLarge is returned by Unpack when the archive holds more than
// its limit, in bytes or in entries: a build that writes without end must
// not fill this host's disk or its inodes.
var ErrArchiveTooLarge = errors.New("the build's files exceed the size limit")

// maxEntries caps the files and directories one archive brings back (a
// variable so that a test can lower it).
var maxEntries = 200_000

// Unpack extracts the gzipped tar r into dir, replacing what is there. The
// archive comes from an untrusted build: only directories and regular files
// are extracted, every path stays inside dir (os.Root), an existing entry is
// removed before it is written (never written through), and the total is
// capped at limit bytes and maxEntries entries.
func Unpack(r io.Reader, dir string, limit int64) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("unpack the build's files: %w", err)
	}
	defer gz.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpack the build's files: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(gz)
	var total int64
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack the build's files: %w", err)
		}
		total += h.Size
		if total > limit || entries >= maxEntries {
			return ErrArchiveTooLarge
		}
		if err := unpackEntry(root, tr, h); err != nil {
			return fmt.Errorf("unpack %q: %w", h.Name, err)
		}
	}
}

func unpackEntry(root *os.Root, r io.Reader, h *tar.Header) error {
	name := path.Clean(strings.TrimPrefix(h.Name, "./"))
	if name == "." || skipUnpack(name) {
		return nil
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return mkdirAll(root, name)
	case tar.TypeReg:
		if err := mkdirAll(root, path.Dir(name)); err != nil {
			return err
		}
		return writeFile(root, name, r, h.FileInfo().Mode().Perm())
	default:
		return nil // links, devices, FIFOs: never on this host
	}
}

// skipUnpack leaves dependencies where they are: the deploy step never
// publishes them and they are most of a project's bytes.
func skipUnpack(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if seg == "node_modules" || seg == ".git" {
			return true
		}
	}
	return false
}

func mkdirAll(root *os.Root, name string) error {
	if name == "." {
		return nil
	}
	fi, err := root.Lstat(name)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		if err := root.RemoveAll(name); err != nil {
			return err
		}
	}
	if err := mkdirAll(root, path.Dir(name)); err != nil {
		return err
	}
	if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

func writeFile(root *os.Root, name string, r io.Reader, perm fs.FileMode) error {
	if err := root.RemoveAll(name); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm&0o755|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
