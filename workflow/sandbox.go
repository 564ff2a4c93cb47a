package workflow

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/build"
	"github.com/libra-deploy/libra-deploy/internal/buildfile"
	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// prepareSandbox plans the build and, when there is one, prepares the
// isolated environment it runs in. A plain static site needs no sandbox: its
// files are published as they are.
func (ru *run) prepareSandbox(ctx context.Context) error {
	plan, err := build.Detect(ru.workDir, ru.r.BuildOptions)
	if err != nil {
		return fmt.Errorf("plan the build: %w", err)
	}
	if ru.tree != nil && (plan.NeedsBuild || plan.OutputDir != ".") {
		if err := ru.writeRest(ctx); err != nil {
			return err
		}
		if plan, err = build.Detect(ru.workDir, ru.r.BuildOptions); err != nil {
			return fmt.Errorf("plan the build: %w", err)
		}
	}
	ru.plan = plan
	for _, w := range plan.Warnings {
		ru.logs.Add(libra.StepSandbox, "warn", w)
	}
	if !plan.NeedsBuild {
		ru.logs.Add(libra.StepSandbox, "info", "no build script: a static site needs no sandbox")
		return nil
	}
	output := "found after the build (dist/, build/ or out/)"
	if plan.OutputDir != "" {
		output = fmt.Sprintf("%s/ (%s)", plan.OutputDir, plan.OutputDirSource)
	}
	ru.logs.Add(libra.StepSandbox, "info", fmt.Sprintf("%s project, %s%s; output %s",
		plan.Framework, plan.PackageManager, lockfileNote(plan.Lockfile), output))
	if reused, err := ru.reuseBuild(ctx); reused || err != nil {
		return err
	}
	if ru.r.Sandboxes == nil {
		return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
			"this project has a build script, but this service has no build sandbox configured"))
	}
	if err := ru.r.Sandboxes.Check(ctx); err != nil {
		// No silent fallback to an unsandboxed build: the reason is the
		// host's, and it stays until an operator fixes it.
		return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
			"this project needs a build, but the %s build sandbox does not work on this host: %v", ru.r.Sandboxes.Name(), err))
	}
	ru.restoreNodeModules()
	sb, err := ru.r.Sandboxes.Create(ctx, libra.SandboxOptions{DeploymentID: ru.d.ID, OrgID: ru.d.OrgID, WorkDir: ru.workDir})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("create %s sandbox: %w", ru.r.Sandboxes.Name(), err)
	}
	ru.sandbox = sb
	ru.logs.Add(libra.StepSandbox, "info", "sandbox ready: "+ru.r.Sandboxes.Name())
	return nil
}

// restoreNodeModules puts the org's cached node_modules for this plan's
// cache key into the working tree, with the lockfile npm wrote when it
// was installed. Ownership is handed to the build uid by the sandbox,
// which chowns the whole working tree when it is created. A failure costs
// a cold install, nothing more.
func (ru *run) restoreNodeModules() {
	if ru.r.BuildCache == nil || ru.plan.CacheKey == "" {
		return
	}
	hit, err := ru.r.BuildCache.RestoreNodeModules(ru.d.OrgID, ru.plan.CacheKey, ru.workDir, -1, -1)
	if err == nil {
		metrics.BuildCacheLookup(hit)
	}
	switch {
	case err != nil:
		ru.logs.Add(libra.StepSandbox, "warn", "dependency cache not restored: "+userMessage(err, libra.StepSandbox))
	case hit:
		ru.restored = true
		ru.logs.Add(libra.StepSandbox, "info", "node_modules restored from this org's build cache")
		if name := writtenLockfile(ru.plan); name != "" && restoreLockfile(ru.workDir, name) {
			ru.logs.Add(libra.StepSandbox, "info", name+" from the cached install restored: the install resolves nothing again")
		}
	default:
		ru.logs.Add(libra.StepSandbox, "info", "no cached node_modules for this lockfile: cold install")
	}
}

func lockfileNote(lockfile string) string {
	if lockfile == "" {
		return " (no lockfile)"
	}
	return " (" + lockfile + ")"
}

// A project sent without a lockfile (as AI builders send them) gets one
// from its first install; that lockfile travels with the cached
// node_modules (as node_modules/.libra-<name>) and is put back with it.
// Without it every warm install would ask the registry to resolve every
// range again, which is most of a warm install's time, and the install
// could not be skipped (installDone). The cache key covers package.json's
// dependencies, so the lockfile matches what they ask for.
//
// writtenLockfiles are the lockfiles kept so, by the package manager that
// writes them; bun's is its text lockfile (bun 1.2 and later). pnpm and
// yarn are left out until measured.
var writtenLockfiles = map[string]string{"npm": "package-lock.json", "bun": "bun.lock"}

// writtenLockfile is the lockfile the plan's install writes and the cache
// keeps, "" when the project has a lockfile of its own or its package
// manager's is not kept.
func writtenLockfile(plan *build.Plan) string {
	if plan.Lockfile != "" {
		return ""
	}
	return writtenLockfiles[plan.PackageManager]
}

func cachedLockfile(name string) string { return "node_modules/.libra-" + name }

// restoreLockfile puts the cached lockfile name in place; false when there
// is none.
func restoreLockfile(workDir, name string) bool {
	root, err := os.OpenRoot(workDir)
	if err != nil {
		return false
	}
	defer root.Close()
	return root.Rename(cachedLockfile(name), name) == nil
}

// maxLockfileBytes caps the install's lockfile kept with the cache; a real
// one of a large app is a few MiB.
const maxLockfileBytes = 64 << 20

// keepLockfile copies the lockfile the install wrote to where the cache
// saves it with node_modules. The install ran the project's scripts, which
// may have left a FIFO, a link or a huge file under that name: it is read
// through buildfile.
func keepLockfile(ctx context.Context, workDir, name string) error {
	b, err := buildfile.ReadFile(ctx, workDir, name, maxLockfileBytes)
	if err != nil {
		return err
	}
	return writeProjectFile(workDir, cachedLockfile(name), b)
}

// writeProjectFile writes data to rel in workDir, replacing what is there,
// under a fresh name that cannot be a FIFO or a link, without following a
// link at any component.
func writeProjectFile(workDir, rel string, data []byte) error {
	root, err := os.OpenRoot(workDir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", rel, err)
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
