// Package cache keeps a bounded local-disk copy of the blobs a node serves,
// in front of any artifact store (S3 in cluster mode), so that a site file is
// fetched from the store once per node rather than once per request.
//
// Files are named by their digest and re-hashed when they are filled, so a
// damaged or wrong download is never served; concurrent misses of one blob
// share one fetch; the least recently used files are evicted to keep the
// directory within its bound. The cache is not the record of anything: a
// node may lose it at any time and only pays refills.
package cache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	libra "github.com/libra-deploy/libra-deploy"
)

// ErrCorrupt is returned when a fetched blob's content does not hash to its
// digest; nothing is cached.
var ErrCorrupt = errors.New("fetched blob does not match its digest")

// fillTimeout bounds one fetch from the backing store. Fills run detached
// from the request that started them, because other requests may be
// waiting on the same fill.
const fillTimeout = 2 * time.Minute

// Cache is a libra.ArtifactStore that writes to its backing store and reads
// through a local directory. It is safe for concurrent use.
type Cache struct {
	backing  libra.ArtifactStore
	dir      string
	maxBytes int64
	fills    singleflight.Group
	fetches  atomic.Int64

	mu      sync.Mutex
	used    int64
	lru     *list.List // of *entry; front is the most recently used
	entries map[string]*list.Element
}

type entry struct {
	sum  string // 64 hex digits, also the file name
	size int64
}

var _ libra.ArtifactStore = (*Cache)(nil)

// New returns a cache of at most maxBytes in dir in front of backing. Files
// a previous run left in dir are kept and count against the bound.
func New(backing libra.ArtifactStore, dir string, maxBytes int64) (*Cache, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("blob cache: size must be positive, got %d", maxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create blob cache: %w", err)
	}
	c := &Cache{backing: backing, dir: dir, maxBytes: maxBytes, lru: list.New(), entries: map[string]*list.Element{}}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// load indexes the files already in dir, oldest first so that they are
// evicted first, and removes temporary files a crash left behind.
func (c *Cache) load() error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("read blob cache: %w", err)
	}
	type found struct {
		entry
		mod time.Time
	}
	var files []found
	for _, de := range des {
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if libra.CheckDigest(libra.DigestPrefix+de.Name()) != nil {
			_ = os.Remove(filepath.Join(c.dir, de.Name()))
			continue
		}
		files = append(files, found{entry{de.Name(), info.Size()}, info.ModTime()})
	}
	slices.SortFunc(files, func(a, b found) int { return a.mod.Compare(b.mod) })
	for _, f := range files {
		c.add(f.entry)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictLocked(nil)
	return nil
}

// Fetches counts the fills that went to the backing store.
func (c *Cache) Fetches() int64 { return c.fetches.Load() }

// Used returns the bytes the cached files take.
func (c *Cache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Put stores the content in the backing store only: the cache fills on
// read, from the store that is the record.
func (c *Cache) Put(ctx context.Context, r io.Reader) (string, int64, error) {
	return c.backing.Put(ctx, r)
}

// Stat asks the backing store, whose times agree across nodes (the site
// host derives Last-Modified from them).
func (c *Cache) Stat(ctx context.Context, digest string) (int64, time.Time, error) {
	st, ok := c.backing.(interface {
		Stat(context.Context, string) (int64, time.Time, error)
	})
	if !ok {
		return 0, time.Time{}, fmt.Errorf("blob cache: the backing store cannot stat")
	}
	return st.Stat(ctx, digest)
}

// Open returns the cached file (an *os.File, so the site host can sendfile
// and serve ranges from it), filling it first when needed.
func (c *Cache) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	// A file evicted between the fill and the open, or removed from the
	// disk behind the cache's back, is forgotten and filled again; a second
	// loss in a row means the cache is far too small for the load.
	for range 2 {
		p, err := c.ensure(ctx, digest)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(p)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open cached blob: %w", err)
		}
		c.forget(filepath.Base(p))
	}
	return nil, fmt.Errorf("blob cache: %s evicted as soon as filled; the cache is too small", digest)
}

// Path returns the cached file's path, filling it first when needed (the
// site host's sendfile path). The file must not be written to.
func (c *Cache) Path(digest string) (string, error) {
	p, err := c.ensure(context.Background(), digest)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		c.forget(filepath.Base(p))
		return c.ensure(context.Background(), digest)
	}
	return p, nil
}

// ensure returns the path of the blob's cached file, fetching it once for
// all concurrent callers when it is not there.
func (c *Cache) ensure(ctx context.Context, digest string) (string, error) {
	if err := libra.CheckDigest(digest); err != nil {
		return "", fmt.Errorf("blob cache: %w", err)
	}
	sum := strings.TrimPrefix(digest, libra.DigestPrefix)
	p := filepath.Join(c.dir, sum)
	if c.hit(sum) {
		return p, nil
	}
	ch := c.fills.DoChan(sum, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
		defer cancel()
		return nil, c.fill(fctx, digest, sum)
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return p, nil
	}
}

// hit marks the blob used and reports whether it is cached.
func (c *Cache) hit(sum string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[sum]
	if ok {
		c.lru.MoveToFront(el)
	}
	return ok
}

// forget drops a file that is no longer on the disk from the index.
func (c *Cache) forget(sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[sum]; ok {
		c.lru.Remove(el)
		delete(c.entries, sum)
		c.used -= el.Value.(*entry).size
	}
}

// fill fetches the blob into a temporary file, re-hashing it on the way,
// and names it only if it matches its digest.
func (c *Cache) fill(ctx context.Context, digest, sum string) error {
	if c.hit(sum) {
		return nil // filled by a flight that ended just before this one
	}
	c.fetches.Add(1)
	src, err := c.backing.Open(ctx, digest)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(c.dir, ".fill-*")
	if err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op once renamed
	size, err := copyVerified(tmp, src, sum)
	if err != nil {
		_ = tmp.Close()
		return fmt.Errorf("fill %s: %w", digest, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(c.dir, sum)); err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	c.add(entry{sum, size})
	return nil
}

// copyVerified copies src to dst and fails unless the content hashes to sum.
// It syncs dst, so a file that a crash leaves under its name is complete
// (New trusts the names it finds).
func copyVerified(dst *os.File, src io.Reader, sum string) (int64, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), src)
	if err != nil {
		return n, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return n, fmt.Errorf("%w: content hashes to sha256:%s", ErrCorrupt, got)
	}
	if err := dst.Sync(); err != nil {
		return n, err
	}
	return n, nil
}

// add indexes a newly named file and evicts others to stay in bound.
func (c *Cache) add(e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.sum]; ok {
		c.lru.MoveToFront(el)
		return
	}
	el := c.lru.PushFront(&e)
	c.entries[e.sum] = el
	c.used += e.size
	c.evictLocked(el)
}

// evictLocked removes the least recently used files until the cache is in
// bound, sparing keep (the file just filled, which a caller is about to
// open): a blob larger than the whole bound is thus still served, and the
// bound is exceeded by at most that one file until the next fill.
func (c *Cache) evictLocked(keep *list.Element) {
	for c.used > c.maxBytes {
		el := c.lru.Back()
		if el == nil || el == keep {
			return
		}
		e := el.Value.(*entry)
		c.lru.Remove(el)
		delete(c.entries, e.sum)
		c.used -= e.size
		// Readers that have the file open keep reading it.
		_ = os.Remove(filepath.Join(c.dir, e.sum))
	}
}
