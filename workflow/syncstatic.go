package workflow

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/build"
)

// staticTree is the final file set of a deployment that sync need not
// write out: a plain static site, whose files deploy publishes straight
// from the input (by the digest they were uploaded with, or inline).
// Writing a thousand small files to a working directory only to read them
// back was most of a static redeploy's time on the server.
type staticTree map[string]libra.FileOp

// planStaticTree returns the input's final files when no build can be
// planned from them: only creates and edits (a delete's effect on
// directories is the file system's to decide), none of build.PlanFiles,
// and no path that is both a file and another file's directory (which the
// written tree refuses). Otherwise sync writes the whole tree.
func planStaticTree(input []libra.FileOp) (staticTree, bool) {
	t := make(staticTree, len(input))
	for _, op := range input {
		if op.Type != libra.OpCreate && op.Type != libra.OpEdit {
			return nil, false
		}
		t[op.Path] = op
	}
	for _, name := range build.PlanFiles() {
		if _, ok := t[name]; ok {
			return nil, false
		}
	}
	return t, !t.fileIsDir()
}

// fileIsDir reports whether a path is a file and some file's directory.
func (t staticTree) fileIsDir() bool {
	dirs := map[string]bool{}
	for p := range t {
		for d := path.Dir(p); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if _, ok := t[d]; ok {
			return true
		}
	}
	return false
}

// split returns, in input order, the operations at the project's root
// level (all that build.Detect reads of such a tree, a 404.html among
// them) and the rest.
func (t staticTree) split(input []libra.FileOp) (root, rest []libra.FileOp) {
	for _, op := range input {
		if !strings.Contains(op.Path, "/") {
			root = append(root, op)
		} else {
			rest = append(rest, op)
		}
	}
	return root, rest
}

// each hands every file to fn in path order, with the same contract as
// readFiles. A stored blob is opened only if fn reads it: a file published
// by its digest and not compressed is never read at all.
func (t staticTree) each(ctx context.Context, store libra.ArtifactStore, fn func(p string, size int64, r io.Reader) error) error {
	paths := make([]string, 0, len(t))
	for p := range t {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if err := t.one(ctx, store, t[p], fn); err != nil {
			return err
		}
	}
	return nil
}

func (t staticTree) one(ctx context.Context, store libra.ArtifactStore, op libra.FileOp, fn func(p string, size int64, r io.Reader) error) error {
	if op.Digest == "" {
		return fn(op.Path, int64(len(op.Content)), strings.NewReader(string(op.Content)))
	}
	b := &lazyBlob{ctx: ctx, store: store, op: op}
	defer b.close()
	return fn(op.Path, op.Size, b)
}

// lazyBlob opens a stored blob at its first read.
type lazyBlob struct {
	ctx   context.Context
	store libra.ArtifactStore
	op    libra.FileOp
	rc    io.ReadCloser
}

func (b *lazyBlob) Read(p []byte) (int, error) {
	if b.rc == nil {
		rc, err := b.store.Open(b.ctx, b.op.Digest)
		if err != nil {
			return 0, fmt.Errorf("open content of %s: %w", b.op.Path, err)
		}
		b.rc = rc
	}
	return b.rc.Read(p)
}

func (b *lazyBlob) close() {
	if b.rc != nil {
		b.rc.Close()
	}
}
