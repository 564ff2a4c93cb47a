package workflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

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

// removeWorkDir takes the working directory out of the deployment's way
// with one rename, and deletes its files after: deleting a thousand files
// took a second on a loaded machine, and the deployment is not complete
// until cleanup is. The name it moves to starts with a dot, which no
// deployment id does, and serve empties the whole work root when it
// starts, so a removal cut short by a stop is finished then.
func (ru *run) removeWorkDir() error {
	trash := filepath.Join(filepath.Dir(ru.workDir),
		fmt.Sprintf(".removing-%s-%d", filepath.Base(ru.workDir), time.Now().UnixNano()))
	err := os.Rename(ru.workDir, trash)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return os.RemoveAll(ru.workDir) // renaming failed: remove in place
	}
	go func() {
		if err := os.RemoveAll(trash); err != nil && ru.r.Logger != nil {
			ru.r.Logger.Warn("remove a finished working directory", "dir", trash, "err", err)
		}
	}()
	return nil
}
