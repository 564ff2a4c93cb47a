package workflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/buildfile"
)

// deploy stores the output's files in the artifact store and publishes the
// manifest that names them. Re-running it is harmless: blobs are
// content-addressed and Publish only ever moves an alias forward.
//
// A built output is read through the sandbox, which passes regular files
// only: the build was untrusted, and a symlink in its output could point
// anywhere on the host.
func (ru *run) deploy(ctx context.Context) error {
	if ru.reused != nil {
		for _, f := range ru.reused.m.Files {
			ru.files++
			ru.bytes += f.Size
		}
		return ru.publish(ctx, ru.reused.m, ru.reused.manifest)
	}
	m := libra.Manifest{Files: map[string]libra.ManifestFile{}}
	limit := ru.r.MaxOutputBytes
	if limit <= 0 {
		limit = DefaultMaxOutputBytes
	}
	// Text files are compressed once, here, on a few workers while the
	// output is read; their variants join the manifest (see compress.go).
	comp := newCompressor(ctx, ru.r.Artifacts)
	put := func(p string, size int64, r io.Reader) error {
		if skipPublish(p) {
			return nil
		}
		if ru.bytes+size > limit {
			return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
				"the output is larger than the %d MiB a deployment may publish (at %s)", limit>>20, p))
		}
		var digest string
		var err error
		if src, ok := ru.known(p, size); ok {
			digest, err = src.Digest, comp.queue(p, size, r)
			ru.byDigest++
		} else {
			digest, size, err = comp.put(p, size, r)
		}
		if err != nil {
			return fmt.Errorf("store %s: %w", p, err)
		}
		m.Files[p] = libra.ManifestFile{Digest: digest, Size: size}
		ru.files++
		ru.bytes += size
		return nil
	}
	var err error
	if ru.sandbox != nil {
		err = ru.sandbox.ReadFiles(ctx, ru.outDir, put)
	} else if ru.tree != nil {
		err = ru.tree.each(ctx, ru.r.Artifacts, put)
	} else {
		err = ru.readFiles(ctx, put)
	}
	if cerr := comp.finish(m.Files); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if len(m.Files) == 0 {
		return libra.Permanent(libra.Errorf(libra.CodeValidation, "nothing to publish: the output has no files"))
	}
	if ru.fullLog != nil {
		if m.BuildLog, err = ru.fullLog.store(ctx, ru.r.Artifacts); err != nil {
			return fmt.Errorf("store the full build log: %w", err)
		}
		ru.logs.Add(libra.StepDeploy, "info", fmt.Sprintf("full build log stored (%d bytes): GET /deploy-log?id=%s", m.BuildLog.Size, ru.d.ID))
	}
	m.NotFound = libra.NotFound404Page
	if ru.plan.SPA {
		m.NotFound = libra.NotFoundSPA
	}
	ru.logs.Add(libra.StepDeploy, "info", "unknown paths: "+ru.plan.SPAReason)
	m.Worker = ru.worker
	digest, err := libra.PutManifest(ctx, ru.r.Artifacts, m)
	if err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	if n, gz, br := comp.stats(); n > 0 {
		ru.logs.Add(libra.StepDeploy, "info", fmt.Sprintf("compressed %d files: %d bytes gzip, %d bytes brotli", n, gz, br))
	}
	return ru.publish(ctx, &m, digest)
}

// publish makes the stored manifest the deployment's: on the deploy target
// when there is one, then in the store, which moves the project's alias.
func (ru *run) publish(ctx context.Context, m *libra.Manifest, digest string) error {
	url := ru.r.SiteURL(ru.d.SiteLabel)
	if ru.r.Target != nil {
		var err error
		if url, err = ru.publishToTarget(ctx, m); err != nil {
			return err
		}
	}
	if err := ru.r.Store.Publish(ctx, ru.d.ID, digest, url); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	ru.published = true
	ru.d.URL = url
	if ru.r.Published != nil {
		ru.r.Published(ru.d.ProjectID)
	}
	ru.logs.Add(libra.StepDeploy, "info", fmt.Sprintf("published %d files (%d bytes) at %s; %d of them by the digest they were uploaded with, not stored again",
		ru.files, ru.bytes, url, ru.byDigest))
	return nil
}

// known returns the stored blob a published file's content came from,
// when deploy may name it without storing it again: nothing but sync wrote
// the file (no build ran), and it still has the blob's size. The blob is
// the org's own (the API checked the org holds every digest the input
// names) and already durable; it stays referenced by this deployment's
// input, so the collector keeps it without a fresh Put. Storing it again
// would cost a flush of the file system per file, which made a redeploy of
// a large site take seconds whatever changed.
func (ru *run) known(p string, size int64) (libra.Encoded, bool) {
	if ru.sandbox != nil || ru.plan == nil || ru.plan.NeedsBuild {
		return libra.Encoded{}, false
	}
	src, ok := ru.sources[path.Join(ru.outDir, p)]
	if !ok || src.Size != size {
		return libra.Encoded{}, false
	}
	return src, true
}

// DefaultMaxOutputBytes caps what one deployment publishes.
const DefaultMaxOutputBytes = 1 << 30

// readFiles walks an output that no build touched (a static site), with the
// same contract as libra.Sandbox.ReadFiles: regular files only, never
// following a link, never leaving the directory.
func (ru *run) readFiles(ctx context.Context, fn func(p string, size int64, r io.Reader) error) error {
	dir := path.Join(ru.workDir, ru.outDir)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open output: %w", err)
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		f, err := buildfile.Open(ctx, dir, p, -1)
		if errors.Is(err, buildfile.ErrNotRegular) || errors.Is(err, fs.ErrNotExist) {
			return nil // swapped since it was listed
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		defer f.Close()
		return fn(p, f.Size, f)
	})
}

// skipPublish leaves out what a project carries but must not serve: version
// control, dependencies and environment files (which hold secrets).
func skipPublish(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".git" || seg == "node_modules" || seg == workerBundleDir {
			return true
		}
	}
	base := path.Base(p)
	return base == ".env" || strings.HasPrefix(base, ".env.")
}
