package build

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/libra-deploy/libra-deploy/internal/buildfile"
)

// lockfiles in order of preference when a project has several: the brief's
// order (bun, pnpm, yarn, npm). A stray package-lock.json next to a
// pnpm-lock.yaml is the usual leftover of someone running `npm install`
// once; the rarer lockfile is the deliberate one.
var lockfiles = []struct{ name, pm string }{
	{"bun.lock", "bun"},
	{"bun.lockb", "bun"},
	{"pnpm-lock.yaml", "pnpm"},
	{"yarn.lock", "yarn"},
	{"npm-shrinkwrap.json", "npm"},
	{"package-lock.json", "npm"},
}

// findLockfile returns the preferred lockfile and its package manager, plus
// a warning for each lockfile of another package manager that is ignored.
func findLockfile(dir string) (name, pm string, warnings []string, err error) {
	for _, lf := range lockfiles {
		ok, err := isRegular(dir, lf.name)
		if err != nil {
			return "", "", nil, err
		}
		switch {
		case !ok:
		case name == "":
			name, pm = lf.name, lf.pm
		case lf.pm != pm:
			warnings = append(warnings, fmt.Sprintf("%s is ignored: %s decides the package manager (%s)", lf.name, name, pm))
		}
	}
	return name, pm, warnings, nil
}

// lockfileSync reports whether the lockfile lists exactly the top-level
// dependencies that package.json asks for. known is false when the lockfile
// cannot be checked (binary bun.lockb, a format we do not read); callers then
// trust the lockfile.
//
// Why check at all: in AI-edited projects package.json often gains a
// dependency while the lockfile from the template stays as it was. A frozen
// install then fails although a plain install would succeed; knowing the
// lockfile is stale lets us pick the plain install and say why.
func lockfileSync(dir, lockfile string, m *manifest) (inSync, known bool) {
	src, ok, err := readProjectFile(dir, lockfile, maxLockfileScan)
	if err != nil || !ok {
		return false, false
	}
	want := m.allDeps()
	switch lockfile {
	case "pnpm-lock.yaml":
		got, ok := pnpmSpecifiers(src)
		if !ok {
			return false, false
		}
		return equalMaps(got, want), true
	case "bun.lock":
		got, ok := bunSpecifiers(src)
		if !ok {
			return false, false
		}
		return equalMaps(got, want), true
	case "yarn.lock":
		keys := yarnKeys(src)
		for name, rng := range want {
			if !keys[name+"@"+rng] && !keys[name+"@npm:"+rng] {
				return false, true
			}
		}
		return true, true
	}
	return false, false
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// pnpmSpecifiers returns the version ranges recorded for the root project
// in pnpm-lock.yaml. It reads the layouts of lockfile versions 5 (a
// "specifiers" map), 6 and 9 (a "specifier" per dependency, under
// importers["."] in 9 and in workspaces).
func pnpmSpecifiers(src []byte) (map[string]string, bool) {
	doc := parseBlockYAML(src)
	if _, ok := doc["lockfileVersion"]; !ok {
		return nil, false
	}
	project := doc
	if importers, ok := doc["importers"].(map[string]any); ok {
		if project, ok = importers["."].(map[string]any); !ok {
			return nil, false
		}
	}
	specifiers, _ := project["specifiers"].(map[string]any)
	out := map[string]string{}
	for _, section := range []string{"dependencies", "devDependencies", "optionalDependencies"} {
		deps, _ := project[section].(map[string]any)
		for name, v := range deps {
			var spec string
			switch v := v.(type) {
			case map[string]any: // lockfile v6, v9
				spec, _ = v["specifier"].(string)
			case string: // lockfile v5: the resolved version; the range is elsewhere
				spec, _ = specifiers[name].(string)
			}
			if spec == "" {
				return nil, false
			}
			out[name] = spec
		}
	}
	return out, true
}

// bunSpecifiers returns the root workspace's ranges from a text bun.lock.
func bunSpecifiers(src []byte) (map[string]string, bool) {
	var doc struct {
		Workspaces map[string]struct {
			Dependencies         map[string]string `json:"dependencies"`
			DevDependencies      map[string]string `json:"devDependencies"`
			OptionalDependencies map[string]string `json:"optionalDependencies"`
		} `json:"workspaces"`
	}
	if err := decodeJSONC(src, &doc); err != nil {
		return nil, false
	}
	root, ok := doc.Workspaces[""]
	if !ok {
		return nil, false
	}
	m := manifest{Deps: root.Dependencies, DevDeps: root.DevDependencies, OptionalDeps: root.OptionalDependencies}
	return m.allDeps(), true
}

// yarnKeys returns the set of descriptors ("react@^18.2.0",
// "react@npm:^18.2.0") that head the entries of a yarn.lock, classic or
// berry. An entry may list several, comma-separated.
func yarnKeys(src []byte) map[string]bool {
	keys := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r ")
		if line == "" || line[0] == ' ' || line[0] == '#' || !strings.HasSuffix(line, ":") {
			continue
		}
		// Classic quotes each descriptor ("a@1", "a@2"); berry quotes the
		// whole list ("a@npm:1, a@npm:2"). Trimming quotes off each part
		// reads both; descriptors never contain quotes themselves.
		for _, d := range strings.Split(strings.TrimSuffix(line, ":"), ",") {
			keys[strings.Trim(strings.TrimSpace(d), `"`)] = true
		}
	}
	return keys
}

// parseBlockYAML reads the block-style mappings of a YAML document into
// nested maps, enough for pnpm-lock.yaml. Flow values ({...}, [...]) stay
// strings and list items are skipped: we need neither.
func parseBlockYAML(src []byte) map[string]any {
	type frame struct {
		indent int
		m      map[string]any
	}
	root := map[string]any{}
	stack := []frame{{-1, root}}
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimRight(line, "\r")
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == '-' {
			continue
		}
		indent := len(line) - len(trimmed)
		for len(stack) > 1 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		key, val, ok := splitYAMLKey(trimmed)
		if !ok {
			continue
		}
		parent := stack[len(stack)-1].m
		if val == "" {
			child := map[string]any{}
			parent[key] = child
			stack = append(stack, frame{indent, child})
		} else {
			parent[key] = unquoteYAML(val)
		}
	}
	return root
}

// splitYAMLKey splits `key: value` (the key possibly quoted).
func splitYAMLKey(s string) (key, val string, ok bool) {
	if s[0] == '\'' || s[0] == '"' {
		end := closingQuote(s)
		if end < 0 || end+1 >= len(s) || s[end+1] != ':' {
			return "", "", false
		}
		return unquoteYAML(s[:end+1]), strings.TrimSpace(s[end+2:]), true
	}
	if strings.HasSuffix(s, ":") && !strings.Contains(s, ": ") {
		return strings.TrimSuffix(s, ":"), "", true
	}
	key, val, ok = strings.Cut(s, ": ")
	return key, strings.TrimSpace(val), ok
}

// closingQuote returns the index of the quote that closes the string s opens.
func closingQuote(s string) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++ // '' is an escaped quote
		case s[i] == q:
			return i
		}
	}
	return -1
}

func unquoteYAML(s string) string {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return s[1 : len(s)-1]
	}
	return s
}

// cacheKeyVersion changes whenever what a saved node_modules holds for a key
// changes meaning, so that old entries simply stop matching.
const cacheKeyVersion = "libra-build-cache v1"

// cacheKey identifies the node_modules a project installs to: the package
// manager, the Node.js major version (native addons are built for it), the
// exact lockfile bytes, and package.json's dependency lists. The brief asks
// for the dependency lists only when there is no lockfile; they are hashed
// always because a stale lockfile (see lockfileSync) would otherwise give a
// project with a new dependency the key of the tree without it, and the
// save after its install would file the new tree under the old key.
func cacheKey(dir, lockfile, pm, nodeMajor string, m *manifest) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\npm %s\nnode %s\n", cacheKeyVersion, pm, nodeMajor)
	// json.Marshal sorts map keys: the same dependencies always give the
	// same bytes, whatever their order in package.json.
	deps, err := json.Marshal(map[string]map[string]string{
		"dependencies":         nonNil(m.Deps),
		"devDependencies":      nonNil(m.DevDeps),
		"optionalDependencies": nonNil(m.OptionalDeps),
	})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "deps %s\n", deps)
	if lockfile != "" {
		f, err := buildfile.Open(context.Background(), dir, lockfile, maxLockfileScan)
		if err != nil {
			return "", err
		}
		defer f.Close()
		fmt.Fprintf(h, "lockfile %s\n", lockfile)
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// nodeMajor extracts the major version from "v22.11.0", "22.11.0" or "22".
func nodeMajor(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	major, _, _ := strings.Cut(v, ".")
	return major
}
