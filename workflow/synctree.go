package workflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"golang.org/x/sync/errgroup"

	libra "github.com/libra-deploy/libra-deploy"
)

// syncWriters bounds the files sync writes at once. Writing a file is
// mostly waiting on the file system (open the blob, create, copy, close),
// so a few at a time overlap those waits; one at a time, a thousand small
// files took 170 ms on a loaded machine.
const syncWriters = 4

// treeWriter applies a deployment's file operations with writes in
// parallel, yet with the result of applying them in order: directories are
// made in order, by the caller, and a delete, or a second write to a path
// still being written, first waits for the writes under way.
type treeWriter struct {
	parent context.Context
	ctx    context.Context
	ru     *run
	root   *os.Root
	g      *errgroup.Group
	dirs   map[string]bool // directories this sync made or found
	busy   map[string]bool // paths written by the writes under way
}

func newTreeWriter(ctx context.Context, ru *run, root *os.Root) *treeWriter {
	w := &treeWriter{parent: ctx, ru: ru, root: root, dirs: map[string]bool{".": true}}
	w.reset()
	return w
}

func (w *treeWriter) reset() {
	w.g, w.ctx = errgroup.WithContext(w.parent)
	w.g.SetLimit(syncWriters)
	w.busy = map[string]bool{}
}

// wait waits for the writes under way and returns the first error.
func (w *treeWriter) wait() error {
	err := w.g.Wait()
	w.reset()
	return err
}

func (w *treeWriter) write(op libra.FileOp) error {
	if w.busy[op.Path] {
		if err := w.wait(); err != nil {
			return err
		}
	}
	if err := w.mkdir(path.Dir(op.Path)); err != nil {
		return libra.Permanent(libra.Errorf(libra.CodeValidation,
			"file %q: cannot create its directory: a file of that name exists", op.Path))
	}
	w.busy[op.Path] = true
	ctx := w.ctx
	w.g.Go(func() error { return w.ru.writeFile(ctx, w.root, op) })
	return nil
}

// mkdir makes dir and its parents once per sync: MkdirAll walks the whole
// path each time, and most files share a few directories.
func (w *treeWriter) mkdir(dir string) error {
	if w.dirs[dir] {
		return nil
	}
	if err := w.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for d := dir; !w.dirs[d]; d = path.Dir(d) {
		w.dirs[d] = true
	}
	return nil
}

// remove deletes a file (or an empty directory) after the writes under
// way, and forgets the directories made: the one removed may be one.
func (w *treeWriter) remove(p string) error {
	if err := w.wait(); err != nil {
		return err
	}
	w.dirs = map[string]bool{".": true}
	err := w.root.Remove(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return libra.Permanent(fmt.Errorf("delete %s: %w", p, err))
	}
	return nil
}
