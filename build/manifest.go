package build

import (
	"fmt"
	"strings"
)

// manifest is what we use of package.json.
type manifest struct {
	// Build is scripts.build, "" when absent.
	Build string
	// Dependency maps, name → version range, as written.
	Deps, DevDeps, OptionalDeps map[string]string
	// PackageManager is the corepack field, e.g. "pnpm@9.12.0".
	PackageManager string
	// InstallScripts: the project has a script of its own that an install
	// runs (rootInstallScripts).
	InstallScripts bool
}

// readManifest reads package.json. It returns nil, nil when the project has
// none: a plain static site.
func readManifest(dir string) (*manifest, error) {
	src, ok, err := readProjectFile(dir, "package.json", maxManifestSize)
	if err != nil || !ok {
		return nil, err
	}
	var doc map[string]any
	if err := decodeJSON(src, &doc); err != nil {
		return nil, projectError("package.json is not valid JSON: %v", err)
	}
	if doc == nil {
		return nil, projectError("package.json is not valid: expected a JSON object, found null")
	}
	m := &manifest{}
	switch scripts := doc["scripts"].(type) {
	case nil:
	case map[string]any:
		for _, name := range rootInstallScripts {
			if _, ok := scripts[name]; ok {
				m.InstallScripts = true
			}
		}
		if b, ok := scripts["build"]; ok {
			s, isString := b.(string)
			if !isString {
				return nil, projectError("package.json is not valid: scripts.build must be a string")
			}
			m.Build = strings.TrimSpace(s)
		}
	default:
		return nil, projectError("package.json is not valid: scripts must be an object")
	}
	for _, f := range []struct {
		key string
		dst *map[string]string
	}{
		{"dependencies", &m.Deps},
		{"devDependencies", &m.DevDeps},
		{"optionalDependencies", &m.OptionalDeps},
	} {
		if *f.dst, err = stringMap(doc, f.key); err != nil {
			return nil, err
		}
	}
	m.PackageManager, _ = doc["packageManager"].(string)
	return m, nil
}

func stringMap(doc map[string]any, key string) (map[string]string, error) {
	switch v := doc[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		out := make(map[string]string, len(v))
		for name, ver := range v {
			s, ok := ver.(string)
			if !ok {
				return nil, projectError("package.json is not valid: %s[%q] must be a version string", key, name)
			}
			out[name] = s
		}
		return out, nil
	default:
		return nil, projectError("package.json is not valid: %s must be an object", key)
	}
}

// has reports whether any of names is a dependency of any kind.
func (m *manifest) has(names ...string) bool {
	for _, n := range names {
		if _, ok := m.Deps[n]; ok {
			return true
		}
		if _, ok := m.DevDeps[n]; ok {
			return true
		}
		if _, ok := m.OptionalDeps[n]; ok {
			return true
		}
	}
	return false
}

// allDeps merges the three dependency maps the way package managers see the
// top-level tree: a name listed twice is installed once, and the regular
// dependency wins.
func (m *manifest) allDeps() map[string]string {
	out := map[string]string{}
	for _, src := range []map[string]string{m.OptionalDeps, m.DevDeps, m.Deps} {
		for k, v := range src {
			out[k] = v
		}
	}
	return out
}

// packageManagerField returns the package manager named by the corepack
// "packageManager" field ("pnpm@9.1.0+sha512..." → "pnpm") and its major
// version, or "" when the field is absent or names something unknown.
func (m *manifest) packageManagerField() (name string, major int) {
	f := strings.TrimSpace(m.PackageManager)
	if f == "" {
		return "", 0
	}
	name, ver, _ := strings.Cut(f, "@")
	if !validPackageManager(name) {
		return "", 0
	}
	fmt.Sscanf(ver, "%d", &major)
	return name, major
}

func validPackageManager(pm string) bool {
	switch pm {
	case "npm", "pnpm", "yarn", "bun":
		return true
	}
	return false
}
