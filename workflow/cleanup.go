package workflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	libra "github.com/libra-deploy/libra-deploy"
)

// cleanup releases what the attempt held: the sandbox and the working
// directory. It runs after a failure too, and twice is harmless.
func (ru *run) cleanup(ctx context.Context) error {
	if ru.sandbox != nil {
		if err := ru.sandbox.Destroy(ctx); err != nil {
			return fmt.Errorf("destroy sandbox: %w", err)
		}
		ru.sandbox = nil
	}
	ru.fullLog.close()
	ru.fullLog = nil
	if err := ru.removeWorkDir(); err != nil {
		return fmt.Errorf("remove working directory: %w", err)
	}
	ru.logs.Add(libra.StepCleanup, "info", "working directory removed")
	return nil
}

// removeWorkDir takes the working directory out of the way at once and
// deletes it in the background. Deleting the node_modules of a typical
// generated app (20 000 files) takes a second or more, which the
// deployment's result need not wait for: the directory is renamed to a
// hidden name of its own in the work root, which nothing else uses, and a
// service that stops before the deletion ends clears the whole work root
// when it starts again. When the rename fails, it is deleted here.
func (ru *run) removeWorkDir() error {
	trash := filepath.Join(filepath.Dir(ru.workDir), ".removing-"+filepath.Base(ru.workDir)+"-"+randomSuffix())
	err := os.Rename(ru.workDir, trash)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return os.RemoveAll(ru.workDir)
	}
	go func() {
		if err := os.RemoveAll(trash); err != nil && ru.r.Logger != nil {
			ru.r.Logger.Warn("working directory not removed", "dir", trash, "err", err)
		}
	}()
	return nil
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
