package workflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// Build reuse: a deployment whose build would read exactly what an earlier
// completed deployment's build of the same project read publishes that
// deployment's output (its manifest) and runs no install, no build and no
// sandbox. The build step runs without network on nothing but these
// inputs, so building again could differ only by what the install
// resolves anew for a project without a lockfile (npm's and bun's are
// kept with the cached node_modules; see saveNodeModules), at the price of
// half a minute. A client that wants a fresh build changes an input; an
// operator turns reuse off with BUILD_REUSE=off.

// buildKeyVersion changes whenever what the key covers changes, so keys of
// an older scheme never match.
const buildKeyVersion = "libra build key 1"

// reusedBuild is the earlier deployment whose output this one publishes.
type reusedBuild struct {
	from     string
	manifest string
	m        *libra.Manifest
}

// reuseBuild records this deployment's build key and looks for a completed
// deployment of the project built from the same key. Called once the plan
// is known and the working tree is complete, before node_modules is
// restored (an output of the install, not an input of it).
func (ru *run) reuseBuild(ctx context.Context) (bool, error) {
	env, err := ru.loadEnv(ctx)
	if err != nil {
		return false, err
	}
	ru.env = env
	key, err := ru.buildKey()
	if err != nil {
		return false, fmt.Errorf("digest the build's inputs: %w", err)
	}
	if err := ru.r.Store.SetBuildKey(ctx, ru.d.ID, key); err != nil {
		return false, fmt.Errorf("record the build key: %w", err)
	}
	if !ru.r.ReuseBuilds {
		return false, nil
	}
	from, digest, err := ru.r.Store.BuiltOutput(ctx, ru.d.ProjectID, key, ru.d.ID)
	if errors.Is(err, libra.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for an earlier build of the same inputs: %w", err)
	}
	m, err := libra.LoadManifest(ctx, ru.r.Artifacts, digest)
	if err != nil {
		ru.logs.Add(libra.StepSandbox, "warn", fmt.Sprintf("deployment %s was built from the same inputs, but its output cannot be read: building again", from))
		return false, nil
	}
	ru.reused = &reusedBuild{from: from, manifest: digest, m: m}
	metrics.BuildReused()
	ru.logs.Add(libra.StepSandbox, "info", fmt.Sprintf(
		"unchanged since deployment %s (same files, build settings and environment): its build output is published again, without a sandbox", from))
	return true, nil
}

// buildKey digests everything a build reads: every file of the working
// tree (path, executable bit, content), the build plan and the server's
// build options (package manager, commands, output directory, Node.js
// version), the environment, the sandbox provider and the deploy target.
// The environment's secrets are in it, so the key is stored, never shown.
func (ru *run) buildKey() (string, error) {
	h := sha256.New()
	settings := struct {
		Version string
		Plan    any
		Options any
		Env     map[string]string
		Sandbox string
		Target  string
	}{Version: buildKeyVersion, Plan: ru.plan, Options: ru.r.BuildOptions, Env: ru.env}
	if ru.r.Sandboxes != nil {
		settings.Sandbox = ru.r.Sandboxes.Name()
	}
	if ru.r.Target != nil {
		settings.Target = ru.r.Target.Name()
	}
	if err := json.NewEncoder(h).Encode(settings); err != nil {
		return "", err
	}
	if err := hashTree(h, ru.workDir); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree writes every entry under root to h in lexical order: a
// directory's name, a symlink's target, a regular file's executable bit
// and the SHA-256 of its content. The tree is the one sync wrote; no
// untrusted code has run in it yet.
func hashTree(h hash.Hash, root string) error {
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		switch t := e.Type(); {
		case t.IsDir():
			fmt.Fprintf(h, "d %q\n", rel)
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %q %q\n", rel, target)
		case t.IsRegular():
			sum, exec, err := fileDigest(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %t %s\n", rel, exec, sum)
		default:
			fmt.Fprintf(h, "? %q %s\n", rel, t)
		}
		return nil
	})
}

func fileDigest(p string) (sum string, exec bool, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", false, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", false, err
	}
	return hex.EncodeToString(h.Sum(nil)), info.Mode()&0o111 != 0, nil
}
