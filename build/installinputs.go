package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/libra-deploy/libra-deploy/internal/buildfile"
)

// installInputFiles are the project files an install reads: the manifest,
// every package manager's lockfile and configuration. Anything else in the
// project cannot change what an install writes into node_modules.
var installInputFiles = []string{
	"package.json",
	"package-lock.json", "npm-shrinkwrap.json", ".npmrc",
	"pnpm-lock.yaml", "pnpm-workspace.yaml", ".pnpmfile.cjs",
	"yarn.lock", ".yarnrc", ".yarnrc.yml",
	"bun.lock", "bun.lockb", "bunfig.toml",
}

// maxInstallInput caps each file hashed by InstallInputs; a real lockfile
// of a large app is a few MiB.
const maxInstallInput = 64 << 20

// InstallInputs is a digest of everything in dir that an install reads:
// the files in installInputFiles, present or absent. Two projects with the
// same digest (and the same cache key: package manager and Node.js major)
// get the same node_modules from an install that follows the lockfile, so
// a tree saved with the digest can stand in for the install when the
// digest matches again. Files are read through buildfile: the install's
// scripts may have left a FIFO or a link under one of these names, which
// is the project's error.
func InstallInputs(ctx context.Context, dir string) (string, error) {
	h := sha256.New()
	for _, name := range installInputFiles {
		f, err := buildfile.Open(ctx, dir, name, maxInstallInput)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(h, "%s absent\n", name)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("install inputs: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, f.Size)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("install inputs: read %s: %w", name, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// rootInstallScripts are the scripts of the project's own package.json
// that an install runs (npm, pnpm, yarn and bun agree on these). They may
// write anywhere in the project, not only into node_modules, so a project
// that has one is always installed.
var rootInstallScripts = []string{"preinstall", "install", "postinstall", "preprepare", "prepare", "postprepare", "prepublish"}
