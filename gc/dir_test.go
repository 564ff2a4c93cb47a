package gc_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
	"github.com/libra-deploy/libra-deploy/gc"
)

// DirBlobs against the real disk store: what Remove takes and what it keeps,
// and that nothing is left behind in the store's temporary directory.
func TestDirBlobsRemove(t *testing.T) {
	ctx := context.Background()
	cutoff := time.Now().Add(-time.Hour)
	tests := []struct {
		name string
		// age sets the blob's time relative to the cutoff; nil deletes it
		// before Remove runs.
		age         *time.Duration
		wantRemoved bool
	}{
		{"older than the cutoff", ptr(-time.Minute), true},
		{"stored again after the cutoff", ptr(time.Minute), false},
		{"stored exactly at the cutoff", ptr(0), false},
		{"already gone", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			store, err := artifactfs.New(root)
			if err != nil {
				t.Fatal(err)
			}
			digest, _, err := store.Put(ctx, strings.NewReader("content of "+tt.name))
			if err != nil {
				t.Fatal(err)
			}
			path, err := store.Path(digest)
			if err != nil {
				t.Fatal(err)
			}
			if tt.age == nil {
				os.Remove(path)
			} else if err := os.Chtimes(path, cutoff.Add(*tt.age), cutoff.Add(*tt.age)); err != nil {
				t.Fatal(err)
			}
			blobs := gc.NewDirBlobs(root)
			removed, err := blobs.Remove(ctx, digest, cutoff)
			if err != nil || removed != tt.wantRemoved {
				t.Fatalf("Remove = %v, %v; want %v", removed, err, tt.wantRemoved)
			}
			_, statErr := os.Stat(path)
			if stillThere := statErr == nil; stillThere != (tt.age != nil && !tt.wantRemoved) {
				t.Fatalf("blob file present = %v after Remove", stillThere)
			}
			if tt.age != nil && !tt.wantRemoved {
				rc, err := store.Open(ctx, digest)
				if err != nil {
					t.Fatalf("kept blob cannot be opened: %v", err)
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				if string(b) != "content of "+tt.name {
					t.Fatalf("kept blob holds %q", b)
				}
			}
			if left, _ := os.ReadDir(filepath.Join(root, "tmp")); len(left) != 0 {
				t.Fatalf("%d files left in tmp", len(left))
			}
			// Storing the content again after a removal brings it back.
			if _, _, err := store.Put(ctx, strings.NewReader("content of "+tt.name)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("Put after Remove: %v", err)
			}
		})
	}
}

func TestDirBlobsWalkSeesOnlyBlobs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	store, err := artifactfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, c := range []string{"a", "bb", "ccc"} {
		d, size, err := store.Put(ctx, strings.NewReader(c))
		if err != nil {
			t.Fatal(err)
		}
		want[d] = size
	}
	// Files that are not blobs: never reported, so never removed.
	for _, p := range []string{"sha256/zz/not-hex", "sha256/ab/short", "stray.txt", "tmp/put-123"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int64{}
	err = gc.NewDirBlobs(root).Walk(ctx, func(b gc.Blob) error {
		if libra.CheckDigest(b.Digest) != nil || b.ModTime.IsZero() {
			t.Errorf("bad blob %+v", b)
		}
		got[b.Digest] = b.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("walked %v, want %v", got, want)
	}
	for d, size := range want {
		if got[d] != size {
			t.Fatalf("blob %s: size %d, want %d", d, got[d], size)
		}
	}
}

func ptr(d time.Duration) *time.Duration { return &d }
