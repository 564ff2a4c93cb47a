package fs

import (
	"bytes"
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
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return libra.DigestPrefix + hex.EncodeToString(s[:])
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// blobFiles lists every regular file under the blob directory.
func blobFiles(t *testing.T, s *Store) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(s.Root(), blobDir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk blobs: %v", err)
	}
	return files
}

func tempFiles(t *testing.T, s *Store) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Root(), tmpDir))
	if err != nil {
		t.Fatalf("read tmp: %v", err)
	}
	return entries
}

func TestPutOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // spans many copy buffers
	tests := []struct {
		name    string
		content []byte
	}{
		{"empty", nil},
		{"small", []byte("hello, world\n")},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe}},
		{"large", big},
	}
	s := newStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			digest, size, err := s.Put(ctx, bytes.NewReader(tt.content))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if want := digestOf(tt.content); digest != want {
				t.Errorf("digest = %s, want %s", digest, want)
			}
			if size != int64(len(tt.content)) {
				t.Errorf("size = %d, want %d", size, len(tt.content))
			}
			rc, err := s.Open(ctx, digest)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, tt.content) {
				t.Errorf("content differs: got %d bytes, want %d", len(got), len(tt.content))
			}
			p, err := s.Path(digest)
			if err != nil {
				t.Fatalf("Path: %v", err)
			}
			sum := strings.TrimPrefix(digest, libra.DigestPrefix)
			if want := filepath.Join(s.Root(), "sha256", sum[:2], sum[2:]); p != want {
				t.Errorf("Path = %s, want %s", p, want)
			}
			onDisk, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(onDisk, tt.content) {
				t.Errorf("file at Path does not hold the content (err %v)", err)
			}
		})
	}
	if n := len(tempFiles(t, s)); n != 0 {
		t.Errorf("%d temporary files left behind", n)
	}
}

func TestPutDeduplicates(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	content := []byte("same bytes")
	d1, _, err := s.Put(ctx, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(d1)
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	d2, size, err := s.Put(ctx, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || size != int64(len(content)) {
		t.Fatalf("second Put = %s/%d, want %s/%d", d2, size, d1, len(content))
	}
	if files := blobFiles(t, s); len(files) != 1 {
		t.Errorf("blob files = %v, want exactly one", files)
	}
	if n := len(tempFiles(t, s)); n != 0 {
		t.Errorf("%d temporary files left behind", n)
	}
	_, mod, err := s.Stat(ctx, d1)
	if err != nil {
		t.Fatal(err)
	}
	if !mod.After(old.Add(time.Hour)) {
		t.Errorf("a repeated Put should bring the blob's time forward; still %v", mod)
	}
}

func TestPutRepairsDamagedBlob(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	content := []byte("the real content")
	d, _, err := s.Put(ctx, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(d)
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("trunc"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(ctx, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("blob not repaired: %q, %v", got, err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const workers = 32
	const distinct = 8
	contents := make([][]byte, distinct)
	for i := range contents {
		contents[i] = bytes.Repeat([]byte(fmt.Sprintf("blob %d;", i)), 5000+i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*distinct)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < distinct; i++ {
				c := contents[(i+w)%distinct]
				d, n, err := s.Put(ctx, bytes.NewReader(c))
				if err != nil {
					errs <- err
					return
				}
				if d != digestOf(c) || n != int64(len(c)) {
					errs <- fmt.Errorf("got %s/%d for content of %d bytes", d, n, len(c))
					return
				}
				// Readers racing with writers must see whole blobs only.
				rc, err := s.Open(ctx, d)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, c) {
					errs <- fmt.Errorf("read back %d bytes (err %v), want %d", len(got), err, len(c))
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if files := blobFiles(t, s); len(files) != distinct {
		t.Errorf("%d blob files, want %d", len(files), distinct)
	}
	if n := len(tempFiles(t, s)); n != 0 {
		t.Errorf("%d temporary files left behind", n)
	}
}

func TestBadDigests(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	// A file outside the blob directory that a traversal would reach.
	secret := filepath.Join(s.Root(), "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := digestOf([]byte("x"))
	tests := []struct {
		name, digest string
	}{
		{"empty", ""},
		{"no prefix", strings.TrimPrefix(valid, "sha256:")},
		{"other algorithm", "md5:" + strings.Repeat("a", 64)},
		{"short", "sha256:abc"},
		{"long", valid + "0"},
		{"uppercase", "sha256:" + strings.ToUpper(strings.TrimPrefix(valid, "sha256:"))},
		{"traversal", "sha256:../../secret" + strings.Repeat("a", 64-len("../../secret"))},
		{"slash", "sha256:" + strings.Repeat("a", 31) + "/" + strings.Repeat("a", 32)},
		{"nul", "sha256:" + strings.Repeat("a", 63) + "\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rc, err := s.Open(ctx, tt.digest); err == nil {
				rc.Close()
				t.Errorf("Open(%q) succeeded", tt.digest)
			} else if errors.Is(err, libra.ErrNotFound) {
				t.Errorf("Open(%q) = %v: a malformed digest is not 'not found'", tt.digest, err)
			}
			if p, err := s.Path(tt.digest); err == nil {
				t.Errorf("Path(%q) = %s, want error", tt.digest, p)
			}
			if _, _, err := s.Stat(ctx, tt.digest); err == nil {
				t.Errorf("Stat(%q) succeeded", tt.digest)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	missing := digestOf([]byte("never stored"))
	if _, err := s.Open(ctx, missing); !errors.Is(err, libra.ErrNotFound) {
		t.Errorf("Open = %v, want ErrNotFound", err)
	}
	if _, err := s.Path(missing); !errors.Is(err, libra.ErrNotFound) {
		t.Errorf("Path = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Stat(ctx, missing); !errors.Is(err, libra.ErrNotFound) {
		t.Errorf("Stat = %v, want ErrNotFound", err)
	}
}

type failingReader struct{ after int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), f.after)
	f.after -= n
	return n, nil
}

func TestFailedPutLeavesNothing(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() context.Context
		r    io.Reader
	}{
		{"reader error", context.Background, &failingReader{after: 100_000}},
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, strings.NewReader("abc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if _, _, err := s.Put(tt.ctx(), tt.r); err == nil {
				t.Fatal("Put succeeded")
			}
			if files := blobFiles(t, s); len(files) != 0 {
				t.Errorf("blobs written: %v", files)
			}
			if n := len(tempFiles(t, s)); n != 0 {
				t.Errorf("%d temporary files left behind", n)
			}
		})
	}
}

func TestNewRemovesStaleTemps(t *testing.T) {
	root := t.TempDir()
	if _, err := New(root); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, tmpDir, "put-stale")
	fresh := filepath.Join(root, tmpDir, "put-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := New(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file (maybe another writer's) removed: %v", err)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	d1 := digestOf([]byte("a"))
	m := libra.Manifest{Files: map[string]libra.ManifestFile{
		"index.html":       {Digest: d1, Size: 1},
		"assets/app-1.js":  {Digest: digestOf([]byte("b")), Size: 1},
		"nested/dir/x.css": {Digest: d1, Size: 1},
	}}
	digest, err := libra.PutManifest(ctx, s, m)
	if err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	again, err := libra.PutManifest(ctx, s, m)
	if err != nil || again != digest {
		t.Errorf("same manifest stored as %s (err %v), want %s", again, err, digest)
	}
	got, err := libra.LoadManifest(ctx, s, digest)
	if err != nil {
		t.Fatalf("LoadManifest: %v", err)
	}
	if len(got.Files) != len(m.Files) {
		t.Fatalf("loaded %d files, want %d", len(got.Files), len(m.Files))
	}
	for p, f := range m.Files {
		if got.Files[p] != f {
			t.Errorf("%s: got %+v, want %+v", p, got.Files[p], f)
		}
	}

	if _, err := libra.LoadManifest(ctx, s, digestOf([]byte("nothing"))); !errors.Is(err, libra.ErrNotFound) {
		t.Errorf("missing manifest: %v, want ErrNotFound", err)
	}
	bad := []struct {
		name string
		blob string
	}{
		{"not json", "{"},
		{"traversal path", `{"files":{"../etc/passwd":{"digest":"` + d1 + `","size":1}}}`},
		{"absolute path", `{"files":{"/etc/passwd":{"digest":"` + d1 + `","size":1}}}`},
		{"bad digest", `{"files":{"a.txt":{"digest":"sha256:zz","size":1}}}`},
		{"negative size", `{"files":{"a.txt":{"digest":"` + d1 + `","size":-1}}}`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			d, _, err := s.Put(ctx, strings.NewReader(tt.blob))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := libra.LoadManifest(ctx, s, d); err == nil {
				t.Error("LoadManifest accepted it")
			}
		})
	}
	if _, err := libra.PutManifest(ctx, s, libra.Manifest{Files: map[string]libra.ManifestFile{"a/../b": {Digest: d1}}}); err == nil {
		t.Error("PutManifest accepted a '..' path")
	}
}
