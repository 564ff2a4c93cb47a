package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/build"
	"github.com/libra-deploy/libra-deploy/internal/buildfile"
)

// tailLines is how much of a failed command's output goes into the
// deployment's error: enough to show the failure, short enough to read.
const tailLines = 20

// build produces the directory to publish. A static site is published as it
// is; a project with a build script is installed (network open to the
// package registries only) and built (no network) in its sandbox.
//
// Success and failure come from exit codes alone, never from words in the
// output. A failing install or build is the project's fault: permanent.
func (ru *run) build(ctx context.Context) error {
	if !ru.plan.NeedsBuild {
		ru.outDir = ru.plan.OutputDir
		ru.logs.Add(libra.StepBuild, "info", "static site: publishing the files as they are")
		return ru.prepareWorker(ctx)
	}
	if ru.reused != nil {
		ru.logs.Add(libra.StepBuild, "info", fmt.Sprintf("build skipped: deployment %s built these same inputs; its %d files are published", ru.reused.from, len(ru.reused.m.Files)))
		return nil
	}
	if ru.installDone(ctx) {
		ru.logs.Add(libra.StepBuild, "info", "install skipped: the node_modules restored from this org's build cache was installed from this same package.json, lockfile and package-manager configuration")
	} else if err := ru.exec(ctx, "install", ru.plan.InstallCommand, true, ru.r.InstallTimeout); err != nil {
		return err
	}
	ru.saveNodeModules(ctx)
	if err := ru.exec(ctx, "build", ru.plan.BuildCommand, false, ru.r.BuildTimeout); err != nil {
		return err
	}
	out, err := build.ResolveOutputDir(ru.workDir, ru.plan)
	if err != nil {
		return err
	}
	ru.outDir = out
	ru.logs.Add(libra.StepBuild, "info", fmt.Sprintf("build output: %s/", out))
	return ru.prepareWorker(ctx)
}

// saveNodeModules puts what the install produced into the org's build
// cache, with the lockfile the install wrote for a project without one
// and the digest of the install's inputs (see installDone). Saved right
// after the install, before the build can change node_modules, so the
// cache holds what the lockfile installs. A failure costs the next
// deployment its warm start, nothing more.
func (ru *run) saveNodeModules(ctx context.Context) {
	if ru.r.BuildCache == nil || ru.plan.CacheKey == "" {
		return
	}
	if name := writtenLockfile(ru.plan); name != "" {
		if err := keepLockfile(ctx, ru.workDir, name); err != nil {
			ru.logs.Add(libra.StepBuild, "warn", "the install's "+name+" is not cached: "+buildFileMessage(err, libra.StepBuild))
		}
	}
	if err := ru.keepInstallInputs(ctx); err != nil {
		ru.logs.Add(libra.StepBuild, "warn", "the next deployment will install again: "+buildFileMessage(err, libra.StepBuild))
	}
	if err := ru.r.BuildCache.SaveNodeModules(ru.d.OrgID, ru.plan.CacheKey, ru.workDir); err != nil {
		ru.logs.Add(libra.StepBuild, "warn", "node_modules not cached: "+userMessage(err, libra.StepBuild))
	}
}

// cachedInstallInputs is where the digest of the install's inputs
// (build.InstallInputs) travels with the cached node_modules.
const cachedInstallInputs = "node_modules/.libra-install-inputs"

// keepInstallInputs records the digest of what the install read, after
// the install (its lockfile included) and before the save.
func (ru *run) keepInstallInputs(ctx context.Context) error {
	digest, err := build.InstallInputs(ctx, ru.workDir)
	if err != nil {
		return err
	}
	return writeProjectFile(ru.workDir, cachedInstallInputs, []byte(digest))
}

// installDone reports whether the install can be skipped: node_modules was
// restored from the org's cache, saved by an install that read exactly
// the files the install would read now (the lockfile restored with it
// included), and the project has no install script of its own, which
// could write outside node_modules. The install would then follow the
// same lockfile into the same tree; on the profile app that saves about a
// second of npm checking 20 000 files.
func (ru *run) installDone(ctx context.Context) bool {
	if !ru.restored || ru.plan.InstallScripts {
		return false
	}
	saved, err := buildfile.ReadFile(ctx, ru.workDir, cachedInstallInputs, 128)
	if err != nil {
		return false
	}
	digest, err := build.InstallInputs(ctx, ru.workDir)
	return err == nil && string(saved) == digest
}

// exec runs one phase's command in the sandbox, streaming its output into
// the deployment's log.
func (ru *run) exec(ctx context.Context, phase string, args []string, network bool, timeout time.Duration) error {
	ru.logs.Add(libra.StepBuild, "info", fmt.Sprintf("%s: %s", phase, strings.Join(args, " ")))
	if ru.fullLog == nil {
		f, err := newFullLog(ru.workDir+".log", ru.r.BuildLogLimit)
		if err != nil {
			return fmt.Errorf("create the full build log: %w", err)
		}
		ru.fullLog = f
	}
	ru.fullLog.add("$ " + strings.Join(args, " "))
	tail := newTail(tailLines)
	var all strings.Builder
	start := time.Now()
	code, err := ru.sandbox.Run(ctx, libra.Command{
		Args:    args,
		Env:     ru.env,
		Network: network,
		Timeout: timeout,
		Output: func(line string) {
			line = ru.logs.redact(line)
			ru.logs.Add(libra.StepBuild, "info", line)
			ru.fullLog.add(line)
			tail.add(line)
			if all.Len() < 1<<20 {
				all.WriteString(line)
				all.WriteByte('\n')
			}
		},
	})
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
				"%s timed out after %s and was stopped\n%s", phase, took, tail.String()))
		}
		// The sandbox could not run the command: the platform's fault.
		return fmt.Errorf("run %s in the sandbox: %w", phase, err)
	}
	if code != 0 {
		msg := fmt.Sprintf("%s failed with exit code %d after %s", phase, code, took)
		if pkg := build.MissingPackage(all.String()); pkg != "" {
			msg += fmt.Sprintf("; the package %q could not be found: add it to package.json or fix its name", pkg)
		}
		return libra.Permanent(libra.Errorf(libra.CodeBuildFailed, "%s\n%s", msg, tail.String()))
	}
	ru.logs.Add(libra.StepBuild, "info", fmt.Sprintf("%s finished in %s", phase, took))
	return nil
}

// buildFileMessage is what a client may see of an error reading a file the
// build wrote: a refusal names only the project-relative path, so it is
// shown; anything else goes through userMessage.
func buildFileMessage(err error, step libra.Step) string {
	if errors.Is(err, buildfile.ErrNotRegular) || errors.Is(err, buildfile.ErrTooLarge) {
		return err.Error()
	}
	return userMessage(err, step)
}

// tail keeps the last n lines written to it.
type tail struct {
	lines []string
	n     int
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(line string) {
	if len(t.lines) == t.n {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:t.n-1]
	}
	t.lines = append(t.lines, line)
}

func (t *tail) String() string { return strings.Join(t.lines, "\n") }
