package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/artifact/cache"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
)

// counted is a real store whose Opens are counted and, when gate is set,
// held until it closes: instrumentation, not a fake.
type counted struct {
	*artifactfs.Store
	opens atomic.Int64
	gate  chan struct{}
}

func (c *counted) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	c.opens.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return c.Store.Open(ctx, digest)
}

func newBacking(t *testing.T) *counted {
	fs, err := artifactfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &counted{Store: fs}
}

func put(t *testing.T, s libra.ArtifactStore, content []byte) string {
	t.Helper()
	d, _, err := s.Put(context.Background(), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readAll(t *testing.T, c *cache.Cache, digest string) []byte {
	t.Helper()
	rc, err := c.Open(context.Background(), digest)
	if err != nil {
		t.Fatalf("Open %s: %v", digest, err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Fatalf("Open returned %T, want *os.File (sendfile, ranges)", rc)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirBytes(t *testing.T, dir string) (total int64, files int) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		info, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		total += info.Size()
		files++
	}
	return total, files
}

func TestCacheFillsOnceThenServesLocally(t *testing.T) {
	backing := newBacking(t)
	c, err := cache.New(backing, t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("<h1>hello</h1>")
	d := put(t, c, content)
	for i := range 3 {
		if got := readAll(t, c, d); !bytes.Equal(got, content) {
			t.Fatalf("read %d: %q", i, got)
		}
	}
	if n := backing.opens.Load(); n != 1 {
		t.Fatalf("backing store opened %d times for 3 reads, want 1", n)
	}
	p, err := c.Path(d)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("Path's file holds %q (err %v)", b, err)
	}
	// Removed from the disk behind the cache's back: filled again.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, d); !bytes.Equal(got, content) || backing.opens.Load() != 2 {
		t.Fatalf("after the file vanished: read %q, %d fetches, want a second fetch", got, backing.opens.Load())
	}
	if _, err := c.Open(context.Background(), libra.DigestPrefix+strings.Repeat("0", 64)); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("Open of a missing blob: %v, want ErrNotFound", err)
	}
}

// A fill whose content does not hash to its digest is refused and leaves
// nothing behind; once the store holds the right bytes, the fill succeeds.
func TestCacheRefusesCorruptedFill(t *testing.T) {
	backing := newBacking(t)
	dir := t.TempDir()
	c, err := cache.New(backing, dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("the real content of the file")
	d := put(t, backing, content)
	blob, err := backing.Path(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(blob, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, []byte("the FAKE content of the file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(context.Background(), d); !errors.Is(err, cache.ErrCorrupt) {
		t.Fatalf("Open of a corrupted blob: %v, want ErrCorrupt", err)
	}
	if total, files := dirBytes(t, dir); files != 0 || c.Used() != 0 {
		t.Fatalf("after a refused fill the cache holds %d files, %d bytes (Used %d), want none", files, total, c.Used())
	}
	if err := os.WriteFile(blob, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, d); !bytes.Equal(got, content) {
		t.Fatalf("after repair read %q", got)
	}
}

// Twenty requests missing one blob at once cause one fetch.
func TestCacheConcurrentMissesFetchOnce(t *testing.T) {
	backing := newBacking(t)
	c, err := cache.New(backing, t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 256<<10)
	_, _ = rand.Read(content)
	d := put(t, backing, content)
	backing.gate = make(chan struct{})
	const readers = 20
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := c.Open(context.Background(), d)
			if err != nil {
				errs <- err
				return
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err == nil && !bytes.Equal(b, content) {
				err = fmt.Errorf("read %d bytes that differ", len(b))
			}
			errs <- err
		}()
	}
	// Whoever arrives after the fill finds the file: one fetch either way;
	// the wait only makes the misses overlap.
	time.Sleep(200 * time.Millisecond)
	close(backing.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := backing.opens.Load(); n != 1 {
		t.Fatalf("%d concurrent misses opened the backing store %d times, want 1", readers, n)
	}
	t.Logf("%d concurrent misses: %d fetch", readers, backing.opens.Load())
}

// Filling far more than the bound keeps the directory within it, evicting
// the least recently used; a new Cache on the same directory keeps the
// bound too.
func TestCacheEvictionKeepsSizeBounded(t *testing.T) {
	backing := newBacking(t)
	dir := t.TempDir()
	const blob, limit = 1000, 10_000
	c, err := cache.New(backing, dir, limit)
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for i := range 50 {
		content := bytes.Repeat([]byte{byte(i)}, blob)
		digests = append(digests, put(t, backing, content))
		readAll(t, c, digests[i])
		// Keep the first blob hot: it must survive every eviction.
		readAll(t, c, digests[0])
		if total, _ := dirBytes(t, dir); total > limit || c.Used() > limit {
			t.Fatalf("after %d fills the cache holds %d bytes on disk (Used %d), over its bound %d", i+1, total, c.Used(), limit)
		}
	}
	opens := backing.opens.Load()
	readAll(t, c, digests[0])
	readAll(t, c, digests[49])
	if backing.opens.Load() != opens {
		t.Fatal("the hot and the newest blob were evicted")
	}
	readAll(t, c, digests[1])
	if backing.opens.Load() != opens+1 {
		t.Fatal("an old cold blob was not evicted")
	}
	total, files := dirBytes(t, dir)
	t.Logf("50 fills of %d bytes into a %d-byte cache: %d files, %d bytes on disk", blob, limit, files, total)

	small, err := cache.New(backing, dir, 3*blob)
	if err != nil {
		t.Fatal(err)
	}
	if total, files := dirBytes(t, dir); total > 3*blob || small.Used() != total {
		t.Fatalf("reopened with a smaller bound: %d files, %d bytes on disk, Used %d", files, total, small.Used())
	}
	if err := os.WriteFile(filepath.Join(dir, ".fill-stale"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.New(backing, dir, 3*blob); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".fill-stale")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a stale temporary file survived New: %v", err)
	}
}
