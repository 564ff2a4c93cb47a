package workflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	libra "github.com/libra-deploy/libra-deploy"
)

// sync assembles the file tree in a fresh working directory: initFiles, then
// history edits, in order. Every write goes through an os.Root, which refuses
// any path that would leave the directory (.., symlinks), on top of the path
// checks the API and validate already made.
func (ru *run) sync(ctx context.Context) error {
	if err := os.RemoveAll(ru.workDir); err != nil {
		return fmt.Errorf("clear working directory: %w", err)
	}
	if err := os.MkdirAll(ru.workDir, 0o755); err != nil {
		return fmt.Errorf("create working directory: %w", err)
	}
	root, err := os.OpenRoot(ru.workDir)
	if err != nil {
		return fmt.Errorf("open working directory: %w", err)
	}
	defer root.Close()

	n, err := ru.writeOps(ctx, root, ru.opsToWrite())
	if err != nil {
		return err
	}
	if ru.tree != nil {
		ru.logs.Add(libra.StepSync, "info", fmt.Sprintf("static site: %d files, %d of them at the root written to plan the build, the rest published from the input as it is", len(ru.tree), n.created+n.edited))
		return nil
	}
	ru.logs.Add(libra.StepSync, "info", fmt.Sprintf("working tree assembled: %d created, %d edited, %d deleted", n.created, n.edited, n.deleted))
	return nil
}

// opsToWrite returns what sync writes: the root level of a plain static
// site (see staticTree), whose other files are noted as sources, or the
// whole input.
func (ru *run) opsToWrite() []libra.FileOp {
	ru.sources = map[string]libra.Encoded{}
	t, ok := planStaticTree(ru.d.Input)
	if !ok {
		return ru.d.Input
	}
	ru.tree = t
	root, rest := t.split(ru.d.Input)
	for _, op := range rest {
		ru.noteSource(op)
	}
	return root
}

// writeRest writes the files of a static tree that sync left out, for a
// plan that reads more than the root after all (not expected: see
// build.PlanFiles), so that no plan ever sees half a project.
func (ru *run) writeRest(ctx context.Context) error {
	root, err := os.OpenRoot(ru.workDir)
	if err != nil {
		return fmt.Errorf("open working directory: %w", err)
	}
	defer root.Close()
	_, rest := ru.tree.split(ru.d.Input)
	ru.tree = nil
	_, err = ru.writeOps(ctx, root, rest)
	return err
}

// writeOps applies ops to the tree under root.
func (ru *run) writeOps(ctx context.Context, root *os.Root, ops []libra.FileOp) (opCounts, error) {
	w := newTreeWriter(ctx, ru, root)
	n, err := ru.applyOps(w, ops)
	// Waited for even after a refusal: no write may outlive the step.
	if werr := w.wait(); err == nil {
		err = werr
	}
	if err == nil {
		err = ctx.Err()
	}
	return n, err
}

type opCounts struct{ created, edited, deleted int }

// applyOps hands operations, in order, to w.
func (ru *run) applyOps(w *treeWriter, ops []libra.FileOp) (opCounts, error) {
	var n opCounts
	for _, op := range ops {
		if w.ctx.Err() != nil {
			return n, nil // a write failed, or the step was cut off: see wait
		}
		switch op.Type {
		case libra.OpCreate, libra.OpEdit:
			if err := w.write(op); err != nil {
				return n, err
			}
			ru.noteSource(op)
			if op.Type == libra.OpCreate {
				n.created++
			} else {
				n.edited++
			}
		case libra.OpDelete:
			if err := w.remove(op.Path); err != nil {
				return n, err
			}
			delete(ru.sources, op.Path)
			n.deleted++
		default:
			return n, libra.Permanent(libra.Errorf(libra.CodeValidation, "file %q: unknown operation %q", op.Path, op.Type))
		}
	}
	return n, nil
}

// noteSource remembers which stored blob a path's content came from, so
// that deploy can publish a file nobody changed by its digest without
// storing it again (see deploy's known). Inline content has no blob.
func (ru *run) noteSource(op libra.FileOp) {
	if op.Digest == "" {
		delete(ru.sources, op.Path)
		return
	}
	if ru.sources == nil {
		ru.sources = map[string]libra.Encoded{}
	}
	ru.sources[op.Path] = libra.Encoded{Digest: op.Digest, Size: op.Size}
}

// writeFile writes one file whose directory exists.
func (ru *run) writeFile(ctx context.Context, root *os.Root, op libra.FileOp) error {
	var src io.Reader
	if op.Digest == "" {
		src = bytes.NewReader(op.Content) // a small file, inline
	} else {
		rc, err := ru.r.Artifacts.Open(ctx, op.Digest)
		if err != nil {
			return fmt.Errorf("open content of %s: %w", op.Path, err)
		}
		defer rc.Close()
		src = rc
	}
	dst, err := root.OpenFile(op.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && (errors.Is(err, fs.ErrExist) || isDirErr(root, op.Path)) {
			return libra.Permanent(libra.Errorf(libra.CodeValidation, "file %q: a directory of that name exists", op.Path))
		}
		return fmt.Errorf("create %s: %w", op.Path, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("write %s: %w", op.Path, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("close %s: %w", op.Path, err)
	}
	return nil
}

func isDirErr(root *os.Root, name string) bool {
	fi, err := root.Lstat(name)
	return err == nil && fi.IsDir()
}
