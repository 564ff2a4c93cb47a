package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	libra "github.com/libra-deploy/libra-deploy"
)

// prepareSandbox decides whether the project needs a build and, if it does,
// prepares the isolated environment it will run in. A plain static site
// needs none: its files are published as they are.
func (ru *run) prepareSandbox(ctx context.Context) error {
	needs, err := hasBuildScript(ru.workDir)
	if err != nil {
		return err
	}
	ru.needsBuild = needs
	if !needs {
		ru.logs.Add(libra.StepSandbox, "info", "no build script: a static site needs no sandbox")
		return nil
	}
	if ru.r.Sandboxes == nil {
		ru.logs.Add(libra.StepSandbox, "warn", "the project has a build script, but this service has no build sandbox")
		return nil
	}
	sb, err := ru.r.Sandboxes.Create(ctx, libra.SandboxOptions{DeploymentID: ru.d.ID, OrgID: ru.d.OrgID, WorkDir: ru.workDir})
	if err != nil {
		return fmt.Errorf("create %s sandbox: %w", ru.r.Sandboxes.Name(), err)
	}
	ru.sandbox = sb
	ru.logs.Add(libra.StepSandbox, "info", "sandbox ready: "+ru.r.Sandboxes.Name())
	return nil
}

// hasBuildScript reports whether dir/package.json declares a "build" script.
func hasBuildScript(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read package.json: %w", err)
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return false, libra.Permanent(libra.Errorf(libra.CodeValidation, "package.json is not valid JSON: %v", err))
	}
	return pkg.Scripts["build"] != "", nil
}
