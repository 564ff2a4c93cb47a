package fs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// TestDuplicatePutWaitsForDurableName: a Put of content already under its
// name must not answer before a flush that began after it was called. The
// name may come from a Put whose flush of names is still running or failed,
// and the caller records the digest as soon as Put returns.
func TestDuplicatePutWaitsForDurableName(t *testing.T) {
	tests := []struct {
		name     string
		flushErr error
		wantErr  bool
	}{
		{"flush succeeds", nil, false},
		{"flush fails", syscall.EIO, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			content := []byte("stored once, stored again")
			if _, _, err := s.Put(context.Background(), bytes.NewReader(content)); err != nil {
				t.Fatalf("first Put: %v", err)
			}
			var flushes atomic.Int64
			s.flushFS = func(d *os.File) error {
				flushes.Add(1)
				if tt.flushErr != nil {
					return tt.flushErr
				}
				return syncfs(d)
			}
			digest, _, err := s.Put(context.Background(), bytes.NewReader(content))
			t.Logf("second Put: %d flushes, err %v", flushes.Load(), err)
			if flushes.Load() == 0 {
				t.Error("second Put answered without flushing the file system")
			}
			if tt.wantErr != (err != nil) {
				t.Errorf("second Put: err %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && digest != digestOf(content) {
				t.Errorf("digest %s, want %s", digest, digestOf(content))
			}
		})
	}
}

// TestWritebackErrorFailsOnlyItsBlob: when the kernel reports that a
// blob's pages could not be written (even though the file system flush
// itself reported nothing, as it does for an error another flush has
// already seen), that Put fails and its blob gets no name; the other
// blobs of the group are unaffected.
func TestWritebackErrorFailsOnlyItsBlob(t *testing.T) {
	s := newStore(t)
	s.checkWritten = func(f *os.File) error {
		head := make([]byte, 3)
		if _, err := f.ReadAt(head, 0); err == nil && string(head) == "bad" {
			return syscall.EIO
		}
		return checkWritten(f)
	}
	contents := [][]byte{[]byte("good one"), []byte("bad one"), []byte("good two"), []byte("good three")}
	errs := make([]error, len(contents))
	done := make(chan int)
	for i, c := range contents {
		go func() {
			_, _, errs[i] = s.Put(context.Background(), bytes.NewReader(c))
			done <- i
		}()
	}
	for range contents {
		<-done
	}
	for i, c := range contents {
		bad := bytes.HasPrefix(c, []byte("bad"))
		if bad != (errs[i] != nil) {
			t.Errorf("Put(%q): err %v, want error %v", c, errs[i], bad)
		}
		_, _, statErr := s.Stat(context.Background(), digestOf(c))
		if bad && !errors.Is(statErr, libra.ErrNotFound) {
			t.Errorf("blob %q that failed to write: Stat says %v, want not found", c, statErr)
		}
		if !bad && statErr != nil {
			t.Errorf("blob %q: %v", c, statErr)
		}
	}
	if n := len(tempFiles(t, s)); n != 0 {
		t.Errorf("%d temporary files left", n)
	}
}
