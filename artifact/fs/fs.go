// Package fs is the artifact store on local disk: each blob is one file named
// by the SHA-256 of its content, under <root>/sha256/<first 2 hex>/<other 62>.
//
// Writes go to a temporary file under the same root and are renamed into
// place once complete and synced, so a reader never sees a partial blob and a
// crash leaves at most a stray temporary file, which New removes later.
package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	libra "github.com/libra-deploy/libra-deploy"
)

const (
	blobDir = "sha256"
	tmpDir  = "tmp"
	// staleTemp is how old a temporary file must be before New deletes it.
	// Another process sharing the root may still be writing younger ones.
	staleTemp = time.Hour
)

// Store is a content-addressed blob store in one directory. It is safe for
// concurrent use, also by several processes sharing the directory.
type Store struct {
	root  string
	blobs string
	tmp   string

	mu      sync.Mutex
	queue   []*pending
	leading bool

	// flushFS flushes the file system holding the open directory d
	// (syncfs), and checkWritten reports a blob's writeback errors. Tests
	// replace them to count flushes and to inject a failing disk's errors.
	flushFS      func(d *os.File) error
	checkWritten func(f *os.File) error
}

func syncfs(d *os.File) error { return unix.Syncfs(int(d.Fd())) }

// checkWritten reports whether any of f's pages failed to reach the disk
// since f was opened. syncfs alone cannot say: it reports a file system's
// error to the first descriptor that checks it, so an error met while one
// group flushed the blobs another group was still writing went to the
// first group only. The kernel keeps each file's error for every
// descriptor opened before it, and sync_file_range's wait returns it
// without the journal commit and disk cache flush an fsync would cost; the
// pages are already clean after syncfs, so nothing is written here.
func checkWritten(f *os.File) error {
	const wait = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	return unix.SyncFileRange(int(f.Fd()), 0, 0, wait)
}

var _ libra.ArtifactStore = (*Store)(nil)

// New opens (creating if needed) a store rooted at root.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("artifact store root %q: %w", root, err)
	}
	s := &Store{root: abs, blobs: filepath.Join(abs, blobDir), tmp: filepath.Join(abs, tmpDir),
		flushFS: syncfs, checkWritten: checkWritten}
	// Blobs include clients' source files: keep them from other local users.
	for _, d := range []string{s.root, s.blobs, s.tmp} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("create artifact store directory: %w", err)
		}
	}
	s.removeStaleTemps()
	return s, nil
}

// Root returns the store's absolute root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) removeStaleTemps() {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return // best effort: stray temporaries only cost disk space
	}
	cutoff := time.Now().Add(-staleTemp)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Put stores r's content. Content that is already stored is not written
// again; its modification time is brought forward instead, so that the
// time of a blob is the last time anyone stored it (site hosts derive
// Last-Modified from it, and a re-published manifest must look new).
func (s *Store) Put(ctx context.Context, r io.Reader) (digest string, size int64, err error) {
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("create temporary blob: %w", err)
	}
	tmpName := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if tmpName != "" {
			_ = os.Remove(tmpName)
		}
	}()

	h := sha256.New()
	bufp := copyBufs.Get().(*[]byte)
	size, err = io.CopyBuffer(io.MultiWriter(f, h), ctxReader{ctx, r}, *bufp)
	copyBufs.Put(bufp)
	if err != nil {
		return "", 0, fmt.Errorf("write blob: %w", err)
	}
	if err := f.Chmod(0o440); err != nil {
		return "", 0, fmt.Errorf("write blob: %w", err)
	}

	sum := hex.EncodeToString(h.Sum(nil))
	digest = libra.DigestPrefix + sum
	dir := filepath.Join(s.blobs, sum[:2])
	dst := filepath.Join(dir, sum[2:])

	// A same-sized file under the name is this content (the name is its
	// hash, and only files whose content reached the disk get a name), so
	// keep it. But its name may not be on the disk yet: the Put that gave
	// it may still be flushing names, or have failed to. So it waits for a
	// flush of the file system that starts after now, as a new blob would.
	// A wrong size means damage from outside; replacing it repairs the blob.
	if info, err := os.Stat(dst); err == nil && info.Mode().IsRegular() && info.Size() == size {
		now := time.Now()
		if err := os.Chtimes(dst, now, now); err == nil {
			if err := s.commit(&pending{dst: dst, done: make(chan error, 1)}); err != nil {
				return "", 0, err
			}
			return digest, size, nil
		}
		// Not allowed to touch it (another user's file, say): replacing
		// it with the identical new copy dates it just as well.
	}

	p := &pending{f: f, tmp: tmpName, dst: dst, dir: dir, done: make(chan error, 1)}
	f, tmpName = nil, "" // the group commit owns them now
	if err := s.commit(p); err != nil {
		return "", 0, err
	}
	return digest, size, nil
}

// pending is a blob waiting for its group commit: a written temporary file
// to name, or (f nil) a blob already named whose name must be made durable.
type pending struct {
	f             *os.File
	tmp, dst, dir string
	done          chan error
}

// commit makes a written blob durable and gives it its name, or, for a
// blob already named, waits until its name is durable.
//
// The content must reach the disk before the name does (else a crash can
// leave a complete-looking name over empty content, which dedup would then
// trust), and the name before the caller records the digest anywhere. Done
// one blob at a time (fsync, rename, fsync of the directory), concurrent
// Puts queue behind each other's journal commits: that capped POST /deploy
// at about 550/s here. Instead the first Put to arrive leads: it flushes the
// file system once for every blob queued so far (syncfs), renames them,
// flushes once more for the names, and releases them all (about 900/s).
func (s *Store) commit(p *pending) error {
	s.mu.Lock()
	s.queue = append(s.queue, p)
	if s.leading {
		s.mu.Unlock()
		return <-p.done
	}
	s.leading = true
	s.mu.Unlock()
	s.lead()
	return <-p.done
}

// lead commits one group, then hands leadership to a new goroutine if more
// blobs queued meanwhile, so no caller waits for more than two groups.
func (s *Store) lead() {
	s.mu.Lock()
	group := s.queue
	s.queue = nil
	s.mu.Unlock()

	s.commitGroup(group)

	s.mu.Lock()
	if len(s.queue) > 0 {
		s.mu.Unlock()
		go s.lead()
		return
	}
	s.leading = false
	s.mu.Unlock()
}

func (s *Store) commitGroup(group []*pending) {
	errs := s.commitFiles(group)
	for i, p := range group {
		if p.tmp != "" {
			_ = os.Remove(p.tmp)
		}
		p.done <- errs[i]
	}
}

// commitFiles flushes, names and flushes again, and returns each blob's
// outcome. Every new blob's file is closed when it returns.
func (s *Store) commitFiles(group []*pending) []error {
	errs := make([]error, len(group))
	// One descriptor for both flushes, opened before the first: the second
	// then reports any error since the group began, whoever saw it first.
	d, err := os.Open(s.blobs)
	if err != nil {
		for i, p := range group {
			errs[i] = fmt.Errorf("open store to sync: %w", err)
			if p.f != nil {
				_ = p.f.Close()
			}
		}
		return errs
	}
	defer d.Close()
	s.flushContents(d, group, errs)
	s.giveNames(group, errs)
	s.flushNames(d, group, errs)
	return errs
}

// flushContents makes the group's new blobs durable with one syncfs (one
// journal commit, where an fsync per blob queued each behind the last),
// then asks each blob whether its own pages made it, and closes it.
func (s *Store) flushContents(d *os.File, group []*pending, errs []error) {
	var syncErr error
	if hasNew(group) {
		syncErr = s.flush(d)
	}
	for i, p := range group {
		if p.f == nil {
			continue
		}
		errs[i] = syncErr
		if errs[i] == nil {
			if err := s.checkWritten(p.f); err != nil {
				errs[i] = fmt.Errorf("write blob to disk: %w", err)
			}
		}
		if err := p.f.Close(); err != nil && errs[i] == nil {
			errs[i] = fmt.Errorf("close blob: %w", err)
		}
	}
}

// giveNames renames each durable new blob into place.
func (s *Store) giveNames(group []*pending, errs []error) {
	for i, p := range group {
		if p.f == nil || errs[i] != nil {
			continue
		}
		if _, err := mkdir(p.dir); err != nil {
			errs[i] = fmt.Errorf("create blob directory: %w", err)
			continue
		}
		// Two writers of the same content may both get here; rename
		// replaces atomically with identical bytes, and open readers keep
		// their file.
		if err := os.Rename(p.tmp, p.dst); err != nil {
			errs[i] = fmt.Errorf("move blob into place: %w", err)
			continue
		}
		p.tmp = ""
	}
}

// flushNames flushes once more for the new names (and directories), and
// for the names of blobs that were already stored.
func (s *Store) flushNames(d *os.File, group []*pending, errs []error) {
	waiting := false
	for i := range group {
		waiting = waiting || errs[i] == nil
	}
	if !waiting {
		return
	}
	nameErr := s.flush(d)
	for i := range group {
		if errs[i] == nil {
			errs[i] = nameErr
		}
	}
}

func hasNew(group []*pending) bool {
	for _, p := range group {
		if p.f != nil {
			return true
		}
	}
	return false
}

// flush flushes the file system that holds the store.
func (s *Store) flush(d *os.File) error {
	if err := s.flushFS(d); err != nil {
		return fmt.Errorf("sync store: %w", err)
	}
	return nil
}

// Open returns the blob's content as an *os.File, which also seeks.
func (s *Store) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	p, err := s.blobPath(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("artifact %s: %w", digest, libra.ErrNotFound)
		}
		return nil, fmt.Errorf("open artifact %s: %w", digest, err)
	}
	return f, nil
}

// Path returns the file holding the blob, for callers that hand it to the
// kernel (sendfile) rather than read it. The file must not be written to.
func (s *Store) Path(digest string) (string, error) {
	p, err := s.blobPath(digest)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("artifact %s: %w", digest, libra.ErrNotFound)
		}
		return "", fmt.Errorf("stat artifact %s: %w", digest, err)
	}
	return p, nil
}

// Stat returns the blob's size and the last time it was stored.
func (s *Store) Stat(ctx context.Context, digest string) (size int64, modTime time.Time, err error) {
	p, err := s.blobPath(digest)
	if err != nil {
		return 0, time.Time{}, err
	}
	info, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, time.Time{}, fmt.Errorf("artifact %s: %w", digest, libra.ErrNotFound)
		}
		return 0, time.Time{}, fmt.Errorf("stat artifact %s: %w", digest, err)
	}
	return info.Size(), info.ModTime(), nil
}

// blobPath maps a checked digest to its file. Only 64 lowercase hex digits
// reach the path, so no digest can name a file outside the blob directory.
func (s *Store) blobPath(digest string) (string, error) {
	if err := libra.CheckDigest(digest); err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	sum := strings.TrimPrefix(digest, libra.DigestPrefix)
	return filepath.Join(s.blobs, sum[:2], sum[2:]), nil
}

func mkdir(dir string) (created bool, err error) {
	err = os.Mkdir(dir, 0o750)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	return false, err
}

// ctxReader stops a long copy once the caller has given up.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
