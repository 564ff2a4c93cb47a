package workflow

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/build"
)

// workerBundleDir is where wrangler writes a project's bundled Worker,
// inside the project; it is never part of what the site publishes.
const workerBundleDir = ".libra-worker"

// prepareWorker reads the project's Worker settings when the deployment
// goes to a deploy target and, when the project's wrangler config has a
// main, bundles it in the build sandbox with the project's own wrangler:
// the bundle is exactly what `wrangler deploy` would upload.
func (ru *run) prepareWorker(ctx context.Context) error {
	if ru.r.Target == nil {
		return nil
	}
	wc, err := build.ReadWorker(ru.workDir)
	if err != nil || wc == nil {
		return err
	}
	w := &libra.Worker{CompatibilityDate: wc.CompatibilityDate, CompatibilityFlags: wc.CompatibilityFlags, HTMLHandling: wc.HTMLHandling}
	ru.worker = w
	if wc.Main == "" {
		ru.logs.Add(libra.StepBuild, "info", wc.File+" has no main: an assets-only Worker")
		return nil
	}
	if ru.sandbox == nil {
		return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
			"%s names a Worker (main = %s), which is bundled by the project's own wrangler: add wrangler to package.json and a build script", wc.File, wc.Main))
	}
	args := []string{"env", "WRANGLER_SEND_METRICS=false", "npx", "--no-install", "wrangler", "deploy", "--dry-run", "--outdir", workerBundleDir}
	if err := ru.exec(ctx, "bundle the Worker", args, false, ru.r.BuildTimeout); err != nil {
		return err
	}
	return ru.storeWorker(ctx, wc.Main)
}

// maxWorkerBytes is Cloudflare's limit on a paid plan's Worker.
const maxWorkerBytes = 10 << 20

// storeWorker keeps the bundle's modules in the artifact store.
func (ru *run) storeWorker(ctx context.Context, main string) error {
	w := ru.worker
	w.Modules = map[string]libra.ManifestFile{}
	var total int64
	err := ru.sandbox.ReadFiles(ctx, workerBundleDir, func(p string, size int64, r io.Reader) error {
		if !isModule(p) {
			return nil
		}
		if total += size; total > maxWorkerBytes {
			return libra.Permanent(libra.Errorf(libra.CodeBuildFailed, "the bundled Worker is larger than Cloudflare's %d MiB", maxWorkerBytes>>20))
		}
		digest, n, err := ru.r.Artifacts.Put(ctx, r)
		if err != nil {
			return fmt.Errorf("store Worker module %s: %w", p, err)
		}
		w.Modules[p] = libra.ManifestFile{Digest: digest, Size: n}
		return nil
	})
	if err != nil {
		return err
	}
	w.MainModule = strings.TrimSuffix(path.Base(main), path.Ext(main)) + ".js"
	if _, ok := w.Modules[w.MainModule]; !ok {
		return libra.Permanent(libra.Errorf(libra.CodeBuildFailed, "wrangler wrote no %s for main = %s", w.MainModule, main))
	}
	ru.logs.Add(libra.StepBuild, "info", fmt.Sprintf("Worker bundled: %d modules, %d bytes, main module %s", len(w.Modules), total, w.MainModule))
	return nil
}

// isModule: what wrangler's bundle holds that Cloudflare runs (not its
// README, not source maps).
func isModule(p string) bool {
	switch path.Ext(p) {
	case ".js", ".mjs", ".cjs", ".wasm":
		return true
	}
	return false
}

// publishToTarget hands the stored manifest to the deploy target and
// returns the URL it serves it at.
func (ru *run) publishToTarget(ctx context.Context, m *libra.Manifest) (string, error) {
	t := ru.r.Target
	ru.logs.Add(libra.StepDeploy, "info", "publishing to "+t.Name())
	domains, err := VerifiedDomains(ctx, ru.r.Store, ru.d.ProjectID)
	if err != nil {
		return "", err
	}
	url, err := t.Publish(ctx, libra.PublishRequest{
		ProjectID: ru.d.ProjectID, DeploymentID: ru.d.ID, Manifest: m, Artifacts: ru.r.Artifacts, Domains: domains,
		Log: func(level, msg string) { ru.logs.Add(libra.StepDeploy, level, msg) },
	})
	if err != nil {
		return "", fmt.Errorf("publish to %s: %w", t.Name(), err)
	}
	return url, nil
}

// VerifiedDomains lists the project's custom domains whose ownership was
// proved: only those may be routed to its deployments on a target.
func VerifiedDomains(ctx context.Context, store libra.Store, projectID string) ([]string, error) {
	all, err := store.Domains(ctx, projectID)
	if err != nil {
		return nil, fmt.Errorf("list the project's domains: %w", err)
	}
	var out []string
	for _, d := range all {
		if d.VerifiedAt != nil {
			out = append(out, d.Domain)
		}
	}
	return out, nil
}
