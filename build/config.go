package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/buildfile"
)

// wranglerFiles are the Cloudflare config files we read, in the order we
// prefer them when a project has more than one.
var wranglerFiles = []string{"wrangler.jsonc", "wrangler.json", "wrangler.toml"}

// wranglerConfig is what we take from a wrangler config file.
type wranglerConfig struct {
	File string
	// OutputDir is assets.directory (Workers) or, failing that,
	// pages_build_output_dir (Pages), cleaned and checked; "" when unset.
	OutputDir string
	// OutputKey names the key OutputDir came from, for messages.
	OutputKey string
	// NotFound is assets.not_found_handling, "" when unset.
	NotFound string
}

// Size limits for files read whole. They are far above any real file of that
// kind; they exist so that a hostile project cannot make the service read a
// gigabyte into memory.
const (
	maxConfigSize   = 1 << 20
	maxManifestSize = 8 << 20
	maxLockfileScan = 64 << 20
)

// readWrangler reads the first wrangler config file present. It returns nil
// when there is none.
func readWrangler(dir string) (*wranglerConfig, []string, error) {
	found, doc, warnings, err := loadWrangler(dir)
	if err != nil || found == "" {
		return nil, nil, err
	}
	cfg := &wranglerConfig{File: found}
	var assets map[string]any
	switch v := doc["assets"].(type) {
	case nil:
	case map[string]any:
		assets = v
	default:
		return nil, nil, projectError("%s: assets must be a table of settings", found)
	}
	for _, key := range []string{"directory", "not_found_handling"} {
		if v, ok := assets[key]; ok {
			if _, isString := v.(string); !isString {
				return nil, nil, projectError("%s: assets.%s must be a string", found, key)
			}
		}
	}
	cfg.NotFound, _ = assets["not_found_handling"].(string)

	rawDir, key := "", ""
	if d, ok := assets["directory"].(string); ok {
		rawDir, key = d, "assets.directory"
	} else if v, ok := doc["pages_build_output_dir"]; ok {
		d, isString := v.(string)
		if !isString {
			return nil, nil, projectError("%s: pages_build_output_dir must be a string", found)
		}
		rawDir, key = d, "pages_build_output_dir"
	}
	if key != "" {
		clean, err := cleanRelDir(rawDir)
		if err != nil {
			return nil, nil, projectError("%s: %s %q %v", found, key, rawDir, err)
		}
		cfg.OutputDir, cfg.OutputKey = clean, key
	}
	return cfg, warnings, nil
}

// loadWrangler finds the project's wrangler config and parses it; found is
// "" when there is none.
func loadWrangler(dir string) (found string, doc map[string]any, warnings []string, err error) {
	for _, name := range wranglerFiles {
		ok, err := isRegular(dir, name)
		if err != nil {
			return "", nil, nil, err
		}
		if !ok {
			continue
		}
		if found != "" {
			warnings = append(warnings, fmt.Sprintf("%s is ignored: %s is used instead", name, found))
			continue
		}
		found = name
	}
	if found == "" {
		return "", nil, nil, nil
	}
	src, _, err := readProjectFile(dir, found, maxConfigSize)
	if err != nil {
		return "", nil, nil, err
	}
	if strings.HasSuffix(found, ".toml") {
		doc, err = parseTOML(src)
	} else {
		err = decodeJSONC(src, &doc)
	}
	if err != nil {
		return "", nil, nil, projectError("%s is not valid: %v", found, err)
	}
	return found, doc, warnings, nil
}

// cleanRelDir turns a directory named in a project's configuration into a
// clean slash path relative to the project ("./dist/" → "dist"), and refuses
// one that would leave the project: the deploy step must never publish a
// host directory because a config file asked it to.
func cleanRelDir(p string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return "", errors.New("is empty")
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("contains a NUL byte")
	}
	// Written on Windows, ".\dist" means "./dist"; the backslash is never
	// part of a real folder name in a web project.
	p = strings.ReplaceAll(p, `\`, "/")
	if path.IsAbs(p) || (len(p) >= 2 && p[1] == ':') {
		return "", errors.New("must be relative to the project, not an absolute path")
	}
	clean := path.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", errors.New("points outside the project")
	}
	return clean, nil
}

// projectError is a permanent failure caused by the project's own files.
func projectError(format string, args ...any) error {
	return libra.Permanent(libra.Errorf(libra.CodeBuildFailed, format, args...))
}

// isRegular reports whether dir/name is a regular file. Symbolic links, at
// any component, count as absent: a project's config must be its own file,
// never a link to one of the host's.
func isRegular(dir, name string) (bool, error) {
	return buildfile.IsRegular(dir, name)
}

// readProjectFile reads dir/name whole, up to limit bytes. ok is false when
// the file does not exist. A file that is not a regular file (or is reached
// through a link), or is larger than limit, is the project's error. Project
// files may have been written by the project's own scripts, so they are
// read through buildfile, which never blocks on a FIFO nor follows a link.
func readProjectFile(dir, name string, limit int64) (data []byte, ok bool, err error) {
	data, err = buildfile.ReadFile(context.Background(), dir, name, limit)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case errors.Is(err, buildfile.ErrNotRegular):
		return nil, false, projectError("%s is not a regular file", name)
	case errors.Is(err, buildfile.ErrTooLarge):
		return nil, false, projectError("%s is too large (at most %d bytes)", name, limit)
	case err != nil:
		return nil, false, err
	}
	return data, true, nil
}
