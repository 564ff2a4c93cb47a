package gc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// DirBlobs lists and removes the blobs of an artifact/fs store: one file per
// blob under <root>/sha256/<2 hex>/<62 hex>, temporary files under
// <root>/tmp. It lives here rather than in artifact/fs because only the
// collector removes blobs, and the store's writers must not gain a way to.
type DirBlobs struct {
	root  string
	blobs string
	tmp   string
}

var _ Blobs = (*DirBlobs)(nil)

// NewDirBlobs works on the artifact/fs store rooted at root.
func NewDirBlobs(root string) *DirBlobs {
	return &DirBlobs{root: root, blobs: filepath.Join(root, "sha256"), tmp: filepath.Join(root, "tmp")}
}

// Walk calls fn for each blob file. Anything else in the tree (a stray
// temporary, a file someone put there) is not a blob and is not reported,
// so it is never removed either.
func (d *DirBlobs) Walk(ctx context.Context, fn func(Blob) error) error {
	fans, err := os.ReadDir(d.blobs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, fan := range fans {
		if !fan.IsDir() || len(fan.Name()) != 2 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := filepath.Join(d.blobs, fan.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range entries {
			digest := libra.DigestPrefix + fan.Name() + e.Name()
			if libra.CheckDigest(digest) != nil || !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile, by another collector
			}
			if err != nil {
				return fmt.Errorf("stat blob: %w", err)
			}
			if err := fn(Blob{Digest: digest, Size: info.Size(), ModTime: info.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove deletes a blob unless it was stored at or after cutoff.
//
// The store's Put, finding content already there, only brings the file's
// modification time forward and reports success. A check of the time
// followed by an unlink would race with that: Put could touch the file
// between the two and then be told its content is stored while it is being
// deleted. So the file is first renamed away, which takes the name from any
// later Put (that Put writes a fresh copy), and its time is read after the
// rename: a Put that touched it before the rename shows, and the file is put
// back under its name.
func (d *DirBlobs) Remove(ctx context.Context, digest string, cutoff time.Time) (bool, error) {
	if err := libra.CheckDigest(digest); err != nil {
		return false, fmt.Errorf("remove blob: %w", err)
	}
	sum := digest[len(libra.DigestPrefix):]
	name := filepath.Join(d.blobs, sum[:2], sum[2:])
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return false, fmt.Errorf("remove blob: %w", err)
	}
	trash := filepath.Join(d.tmp, "gc-"+sum[:16]+"-"+hex.EncodeToString(r[:]))
	if err := os.Rename(name, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("remove blob %s: %w", digest, err)
	}
	info, err := os.Stat(trash)
	if err == nil && info.ModTime().Before(cutoff) {
		if err := os.Remove(trash); err != nil {
			return false, fmt.Errorf("remove blob %s: %w", digest, err)
		}
		return true, nil
	}
	// Stored again meanwhile, or its time cannot be read: keep it. Link
	// rather than rename, so that a fresh copy a Put has already written
	// under the name is left alone (it holds the same bytes).
	if lerr := os.Link(trash, name); lerr != nil && !errors.Is(lerr, fs.ErrExist) {
		if rerr := os.Rename(trash, name); rerr != nil {
			return false, fmt.Errorf("put back blob %s: %w", digest, rerr)
		}
		return false, err
	}
	_ = os.Remove(trash)
	if err != nil {
		return false, fmt.Errorf("stat blob %s: %w", digest, err)
	}
	return false, nil
}
