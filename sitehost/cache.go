package sitehost

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"weak"

	libra "github.com/libra-deploy/libra-deploy"
)

// blob is one content's bytes in memory, shared by every file (of any site)
// with that digest.
type blob struct {
	digest string
	data   []byte
	// ref is the CLOCK bit: set on use, cleared as the hand passes.
	ref atomic.Bool

	gzipOnce   sync.Once
	gzip       []byte // nil when gzip would not be smaller
	gzipLength []string

	// Guarded by blobCache.mu.
	cost  int64
	pos   int
	users []weak.Pointer[file]
}

// blobCache keeps hot contents in memory up to a byte budget, evicting with
// the CLOCK approximation of LRU: a hit only sets a bit, so the request path
// takes no lock. Files point at their blob directly; eviction clears those
// pointers through weak references, so an evicted blob is freed even while
// the sites that used it stay loaded, and a dropped site is freed even while
// its blobs stay cached.
type blobCache struct {
	max     int64
	maxItem int64
	load    func(ctx context.Context, f *file) ([]byte, error)

	mu    sync.Mutex
	byKey map[string]*blob
	ring  []*blob
	hand  int
	used  int64
	fills map[string]*blobFill
}

type blobFill struct {
	done chan struct{}
	b    *blob
	err  error
}

func newBlobCache(max int64, load func(ctx context.Context, f *file) ([]byte, error)) *blobCache {
	return &blobCache{
		max: max,
		// One file may take an eighth of the budget: a few large videos
		// must not flush every page and script of every site.
		maxItem: max / 8,
		load:    load,
		byKey:   map[string]*blob{},
		fills:   map[string]*blobFill{},
	}
}

// get returns f's content from memory, loading it on a miss. It returns nil
// and no error for files too large to cache: the caller streams those.
func (c *blobCache) get(ctx context.Context, f *file) (*blob, error) {
	if b := f.blob.Load(); b != nil {
		b.touch()
		return b, nil
	}
	if f.size > c.maxItem {
		return nil, nil
	}
	c.mu.Lock()
	if b := c.byKey[f.digest]; b != nil {
		c.attach(f, b)
		c.mu.Unlock()
		b.touch()
		return b, nil
	}
	if fl := c.fills[f.digest]; fl != nil {
		c.mu.Unlock()
		select {
		case <-fl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if fl.err != nil {
			return nil, fl.err
		}
		c.mu.Lock()
		if c.byKey[f.digest] == fl.b {
			c.attach(f, fl.b)
		}
		c.mu.Unlock()
		return fl.b, nil
	}
	fl := &blobFill{done: make(chan struct{})}
	c.fills[f.digest] = fl
	c.mu.Unlock()

	// The first requester may leave; the others still want the content.
	data, err := c.load(context.WithoutCancel(ctx), f)

	c.mu.Lock()
	delete(c.fills, f.digest)
	if err == nil {
		fl.b = &blob{digest: f.digest, data: data, cost: int64(len(data)) + blobOverhead}
		c.insert(fl.b)
		c.attach(f, fl.b)
	}
	fl.err = err
	close(fl.done)
	c.mu.Unlock()
	return fl.b, err
}

// blobOverhead accounts for the bookkeeping of each cached blob, so that
// many tiny files cannot exceed the budget by their headers alone.
const blobOverhead = 256

func (b *blob) touch() {
	// Read before write: a bit that is already set costs no cache-line
	// transfer between cores.
	if !b.ref.Load() {
		b.ref.Store(true)
	}
}

func (c *blobCache) attach(f *file, b *blob) {
	f.blob.Store(b)
	if len(b.users) >= 8 && len(b.users) == cap(b.users) {
		live := b.users[:0]
		for _, u := range b.users {
			if u.Value() != nil {
				live = append(live, u)
			}
		}
		clear(b.users[len(live):])
		b.users = live
	}
	b.users = append(b.users, weak.Make(f))
}

func (c *blobCache) insert(b *blob) {
	c.evictFor(b.cost)
	b.pos = len(c.ring)
	b.ref.Store(true)
	c.ring = append(c.ring, b)
	c.byKey[b.digest] = b
	c.used += b.cost
}

// evictFor makes room for need more bytes.
func (c *blobCache) evictFor(need int64) {
	for c.used+need > c.max && len(c.ring) > 0 {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		b := c.ring[c.hand]
		if b.ref.Load() {
			b.ref.Store(false)
			c.hand++
			continue
		}
		c.evict(b)
	}
}

func (c *blobCache) evict(b *blob) {
	last := len(c.ring) - 1
	c.ring[b.pos] = c.ring[last]
	c.ring[b.pos].pos = b.pos
	c.ring[last] = nil
	c.ring = c.ring[:last]
	delete(c.byKey, b.digest)
	c.used -= b.cost
	for _, u := range b.users {
		if f := u.Value(); f != nil {
			f.blob.CompareAndSwap(b, nil)
		}
	}
	b.users = nil
}

// gzipped returns the gzip encoding of b, computing it on first use: once
// per content while cached, never per request.
func (c *blobCache) gzipped(b *blob) []byte {
	b.gzipOnce.Do(func() {
		var buf bytes.Buffer
		buf.Grow(len(b.data) / 3)
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b.data)
		_ = zw.Close()
		// Keep it only when it saves at least a tenth.
		if buf.Len() >= len(b.data)-len(b.data)/10 {
			return
		}
		b.gzip = bytes.Clone(buf.Bytes())
		b.gzipLength = []string{strconv.Itoa(len(b.gzip))}
		c.mu.Lock()
		if c.byKey[b.digest] == b {
			b.cost += int64(len(b.gzip))
			c.used += int64(len(b.gzip))
			c.evictFor(0)
		}
		c.mu.Unlock()
	})
	return b.gzip
}

// stats reports the cache's size, for tests and metrics.
func (c *blobCache) stats() (items int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ring), c.used
}

var errBlobMismatch = errors.New("stored content does not match its digest")

// readBlob reads f's content whole and checks it against its digest, so a
// damaged store never puts wrong bytes into the cache for a year of
// immutable caching downstream.
func readBlob(ctx context.Context, store libra.ArtifactStore, f *file) ([]byte, error) {
	rc, err := store.Open(ctx, f.digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, f.size)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.digest, err)
	}
	var extra [1]byte
	if n, _ := rc.Read(extra[:]); n > 0 {
		return nil, fmt.Errorf("read %s: longer than its manifest size: %w", f.digest, errBlobMismatch)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != strings.TrimPrefix(f.digest, libra.DigestPrefix) {
		return nil, fmt.Errorf("read %s: %w", f.digest, errBlobMismatch)
	}
	return data, nil
}
