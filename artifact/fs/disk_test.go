package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// failingDisk is an ext4 file system on a loop device whose backing file
// lives on a tmpfs smaller than the file system: once the tmpfs is full,
// every block the kernel writes back fails, as on a disk that went bad.
type failingDisk struct {
	t     *testing.T
	back  string // the tmpfs
	mnt   string // the ext4 file system
	loop  string // /dev/loopN
	image string
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newFailingDisk needs root and losetup, mkfs.ext4 and mount; it skips the
// test without them.
func newFailingDisk(t *testing.T, tmpfsMiB int) *failingDisk {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a loop device")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	dir := t.TempDir()
	d := &failingDisk{t: t, back: filepath.Join(dir, "back"), mnt: filepath.Join(dir, "mnt")}
	d.image = filepath.Join(d.back, "disk.img")
	for _, p := range []string{d.back, d.mnt} {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(tmpfsMiB)+"m", "tmpfs", d.back).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", d.back).Run() })
	run(t, "truncate", "-s", "512M", d.image)
	d.loop = run(t, "losetup", "-f", "--show", d.image)
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", d.loop).Run() })
	// One page per request: the loop driver reports a short write to its
	// backing file as a success, so a request that straddled the moment
	// the tmpfs filled would lose its tail silently, a lying disk that no
	// file system can catch. A page is written whole or fails.
	queue := filepath.Join("/sys/block", filepath.Base(d.loop), "queue", "max_sectors_kb")
	if err := os.WriteFile(queue, []byte("4"), 0o644); err != nil {
		t.Skipf("cannot limit the loop device's request size: %v", err)
	}
	// Few inodes and a small journal, both written out now: blocks that
	// are on the tmpfs already can be written again when it is full, so
	// the journal keeps working and only new blocks, blob contents, fail.
	// (A failing journal would stop the whole file system, which hides
	// nothing.)
	run(t, "mkfs.ext4", "-q", "-N", "512", "-J", "size=4", "-E", "lazy_itable_init=0,lazy_journal_init=0", d.loop)
	d.mount()
	t.Cleanup(func() { _ = exec.Command("umount", d.mnt).Run() })
	return d
}

func (d *failingDisk) mount() { run(d.t, "mount", "-o", "noinit_itable", d.loop, d.mnt) }

// remountHealed gives the backing tmpfs room again and mounts the file
// system afresh, so that reads come from the disk, not the page cache.
func (d *failingDisk) remountHealed() {
	run(d.t, "umount", d.mnt)
	run(d.t, "mount", "-o", "remount,size=1024m", d.back)
	d.mount()
}

// TestWritebackErrorsOnRealDisk writes more blobs, concurrently, than the
// disk can really hold. Whatever Put accepted must read back intact from
// the disk after a remount: a blob whose pages were lost must have failed.
func TestWritebackErrorsOnRealDisk(t *testing.T) {
	const roomMiB = 48
	disk := newFailingDisk(t, roomMiB)
	s, err := New(filepath.Join(disk.mnt, "store"))
	if err != nil {
		t.Fatal(err)
	}
	// Every blob directory now, while there is room: a directory's blocks
	// must not be what fails.
	for i := range 256 {
		if err := os.Mkdir(filepath.Join(s.blobs, hex.EncodeToString([]byte{byte(i)})), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	flushNow(t, s.blobs)
	const blobs, blobMiB, writers = 160, 1, 16
	accepted := make(map[string][]byte)
	var mu sync.Mutex
	failed := 0
	sem := make(chan struct{}, writers)
	var wg sync.WaitGroup
	for range blobs {
		content := make([]byte, blobMiB<<20)
		if _, err := rand.Read(content); err != nil {
			t.Fatal(err)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			digest, _, err := s.Put(context.Background(), bytes.NewReader(content))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			accepted[digest] = content
		}()
	}
	wg.Wait()
	t.Logf("%d of %d blobs of %d MiB accepted on a disk with room for about %d MiB; %d failed",
		len(accepted), blobs, blobMiB, roomMiB, failed)
	if failed == 0 {
		t.Fatal("no Put failed: the disk's errors were not injected")
	}

	disk.remountHealed()
	lost := 0
	for digest := range accepted {
		if !readsBack(t, filepath.Join(disk.mnt, "store"), digest) {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d accepted blobs are not on the disk as written", lost, len(accepted))
	}
}

// readsBack reports whether the blob's file holds content with its digest.
func readsBack(t *testing.T, root, digest string) bool {
	sum := strings.TrimPrefix(digest, libra.DigestPrefix)
	f, err := os.Open(filepath.Join(root, blobDir, sum[:2], sum[2:]))
	if err != nil {
		t.Logf("blob %s: %v", digest, err)
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Logf("blob %s: read: %v", digest, err)
		return false
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		t.Logf("blob %s: content on disk hashes to %s", digest, got)
		return false
	}
	return true
}

// flushNow writes out everything on dir's file system.
func flushNow(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := syncfs(d); err != nil {
		t.Fatalf("syncfs: %v", err)
	}
}
