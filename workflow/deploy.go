package workflow

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sync/errgroup"

	libra "github.com/libra-deploy/libra-deploy"
)

// deploy stores the output's files in the artifact store and publishes the
// manifest that names them. Re-running it is harmless: blobs are
// content-addressed and Publish only ever moves an alias forward.
func (ru *run) deploy(ctx context.Context) error {
	root, err := os.OpenRoot(ru.outDir)
	if err != nil {
		return fmt.Errorf("open output: %w", err)
	}
	defer root.Close()
	var paths []string
	err = fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if p != "." && skipPublish(p, true) {
				return fs.SkipDir
			}
			return nil
		}
		// Only regular files: a symlink could point anywhere on the host.
		if !e.Type().IsRegular() {
			ru.logs.Add(libra.StepDeploy, "warn", fmt.Sprintf("skipped %s: not a regular file", p))
			return nil
		}
		if !skipPublish(p, false) {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}

	// Stored a few at a time: the artifact store makes each blob durable
	// with a group commit, which concurrent Puts share.
	files := make([]libra.ManifestFile, len(paths))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, p := range paths {
		g.Go(func() error {
			f, err := root.Open(p)
			if err != nil {
				return fmt.Errorf("open %s: %w", p, err)
			}
			defer f.Close()
			digest, size, err := ru.r.Artifacts.Put(gctx, f)
			if err != nil {
				return fmt.Errorf("store %s: %w", p, err)
			}
			files[i] = libra.ManifestFile{Digest: digest, Size: size}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	m := libra.Manifest{Files: make(map[string]libra.ManifestFile, len(paths))}
	for i, p := range paths {
		m.Files[p] = files[i]
		ru.files++
		ru.bytes += files[i].Size
	}
	if len(m.Files) == 0 {
		return libra.Permanent(libra.Errorf(libra.CodeValidation, "nothing to publish: the output has no files"))
	}
	digest, err := libra.PutManifest(ctx, ru.r.Artifacts, m)
	if err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	url := ru.r.SiteURL(ru.d.ID)
	if err := ru.r.Store.Publish(ctx, ru.d.ID, digest, url); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	ru.d.URL = url
	if ru.r.Published != nil {
		ru.r.Published(ru.d.ProjectID)
	}
	ru.logs.Add(libra.StepDeploy, "info", fmt.Sprintf("published %d files (%d bytes) at %s", ru.files, ru.bytes, url))
	return nil
}

// skipPublish leaves out what a static project carries but must not serve:
// version control, dependencies and environment files (which hold secrets).
func skipPublish(p string, dir bool) bool {
	base := path.Base(p)
	if dir {
		return base == ".git" || base == "node_modules"
	}
	return base == ".env" || strings.HasPrefix(base, ".env.")
}
