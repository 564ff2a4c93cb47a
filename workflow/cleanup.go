package workflow

import (
	"context"
	"fmt"
	"os"

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
	if err := os.RemoveAll(ru.workDir); err != nil {
		return fmt.Errorf("remove working directory: %w", err)
	}
	ru.logs.Add(libra.StepCleanup, "info", "working directory removed")
	return nil
}
