package build

import (
	"net/url"
	"regexp"
	"strings"
)

// missingPatterns recognise the messages of package managers, Node.js and
// bundlers that name something that could not be found. The group "name"
// holds what was named, the optional group "range" a version range given
// apart from it; kind says how to read them.
var missingPatterns = []struct {
	kind missingKind
	re   *regexp.Regexp
}{
	// npm 7-10: 404  'left-pad-x@^1.0.0' is not in this registry.
	// npm 11:   404  The requested resource 'left-pad-x@^1.0.0' could not be found ...
	{specName, regexp.MustCompile(`'(?P<name>[^'\s]+)' (?:is not in (?:this|the npm) registry|could not be found)`)},
	// pnpm: left-pad-x is not in the npm registry, or you have no permission to fetch it.
	{specName, regexp.MustCompile(`(?m)^\s*(?P<name>\S+) is not in the npm registry`)},
	// npm, pnpm, bun: the registry request that failed, e.g.
	// "404 Not Found - GET https://registry.npmjs.org/@scope%2fname - Not found".
	{urlName, regexp.MustCompile(`GET https?://\S*?/(?P<name>(?:@[^/\s%]+(?:/|%2[fF]))?[^/\s%:]+)(?:[\s:]|$)`)},
	// yarn 1: error An unexpected error occurred: "https://registry.yarnpkg.com/x: Not found".
	{urlName, regexp.MustCompile(`"https?://\S*?/(?P<name>(?:@[^/\s%]+(?:/|%2[fF]))?[^/\s%:"]+): Not found"`)},
	// yarn 1: error Couldn't find package "x" on the "npm" registry.
	{specName, regexp.MustCompile(`Couldn't find package "(?P<name>[^"]+)"`)},
	// yarn 2+: YN0035: │ x@npm:^1.0.0: Package not found
	{specName, regexp.MustCompile(`YN0035: \S*\s*(?P<name>\S+): Package not found`)},
	// bun: error: package "x" not found
	{specName, regexp.MustCompile(`package "(?P<name>[^"]+)" not found`)},

	// A version that does not exist of a package that does.
	// npm: notarget No matching version found for react@^99.0.0.
	// pnpm: ERR_PNPM_NO_MATCHING_VERSION  No matching version found for react@^99.0.0
	{specVersion, regexp.MustCompile(`No matching version found for (?P<name>\S+?)\.?(?:\s|$)`)},
	// yarn 1: error Couldn't find any versions for "react" that matches "^99.0.0"
	{specVersion, regexp.MustCompile(`Couldn't find any versions for "(?P<name>[^"]+)" that matches "(?P<range>[^"]+)"`)},
	// bun: error: No version matching "^99.0.0" found for specifier "react" (but package exists)
	{specVersion, regexp.MustCompile(`No version matching "(?P<range>[^"]+)" found for specifier "(?P<name>[^"]+)"`)},
	// yarn 2+: YN0082: │ react@npm:^99.0.0: No candidates found
	{specVersion, regexp.MustCompile(`YN0082: \S*\s*(?P<name>\S+): No candidates found`)},

	// Imports that do not resolve, at build or run time. Group 1 is a
	// module specifier: a package name, a deep import, or a path.
	// Node: Error: Cannot find module 'x' (also tsc's TS2307)
	// Node ESM: Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'x' imported from ...
	{moduleName, regexp.MustCompile(`Cannot find (?:module|package) '(?P<name>[^']+)'`)},
	// Vite: [vite]: Rollup failed to resolve import "x" from "src/App.tsx".
	// Vite 8: [vite]: Rolldown failed to resolve import "x" from ...
	// Vite dev: Failed to resolve import "x" from "src/App.tsx".
	{moduleName, regexp.MustCompile(`(?i)failed to resolve import ["'](?P<name>[^"']+)["']`)},
	// esbuild: ✘ [ERROR] Could not resolve "x"; rolldown quotes with '.
	{moduleName, regexp.MustCompile(`Could not resolve ["'](?P<name>[^"']+)["']`)},
	// webpack (CRA, Next.js): Module not found: Error: Can't resolve 'x' in '/src'
	{moduleName, regexp.MustCompile(`Can't resolve '(?P<name>[^']+)'`)},

	// The build script's tool is not installed: sh: 1: vite: not found.
	{binaryName, regexp.MustCompile(`(?m)^(?:sh|bash)(?:: \d+)?: (?P<name>[\w.-]+): (?:command )?not found`)},
}

type missingKind int

const (
	specName    missingKind = iota // name@range, or a bare name
	specVersion                    // name@range whose range matches no version
	urlName                        // the last path segment(s) of a registry URL
	moduleName                     // an import specifier
	binaryName                     // an executable in node_modules/.bin
)

// binaryPackages maps the commands that build scripts call to the packages
// that provide them, where the names differ or the command is common enough
// to be worth naming.
var binaryPackages = map[string]string{
	"vite":            "vite",
	"tsc":             "typescript",
	"next":            "next",
	"astro":           "astro",
	"nuxt":            "nuxt",
	"nuxi":            "nuxt",
	"svelte-kit":      "@sveltejs/kit",
	"react-scripts":   "react-scripts",
	"vue-cli-service": "@vue/cli-service",
	"gatsby":          "gatsby",
	"vue-tsc":         "vue-tsc",
	"svelte-check":    "svelte-check",
	"webpack":         "webpack",
	"rollup":          "rollup",
	"esbuild":         "esbuild",
	"parcel":          "parcel",
	"tailwindcss":     "tailwindcss",
	"eleventy":        "@11ty/eleventy",
}

var (
	ansiRe = regexp.MustCompile("\x1b\\[[0-9;?]*[ -/]*[@-~]")
	// npmNameRe accepts the names npm allows: an optional scope, then
	// URL-safe characters. Upper case is allowed because old packages have it.
	npmNameRe = regexp.MustCompile(`^(?:@[a-zA-Z0-9][\w.~-]*/)?[a-zA-Z0-9_][\w.~-]*$`)
)

// MissingPackage reads install or build output for a package that could not
// be found and returns its name, so that the deployment's error can name it
// ("the package axios could not be found: add it to package.json"). When the
// package exists but the requested version does not, it returns
// "name@range". It returns "" when the output names nothing; when it names
// several, the first one, which is usually the cause of the rest.
//
// It only reads words, so it never decides whether a build failed: exit
// codes do that.
func MissingPackage(output string) string {
	output = ansiRe.ReplaceAllString(output, "")
	best, bestAt := "", len(output)+1
	for _, p := range missingPatterns {
		ni, ri := 2*p.re.SubexpIndex("name"), 2*p.re.SubexpIndex("range")
		for _, loc := range p.re.FindAllStringSubmatchIndex(output, -1) {
			// Ranked by where the match starts, so that the first message
			// in the output wins whichever pattern found it.
			if loc[0] >= bestAt {
				break
			}
			rng := ""
			if ri > 0 && loc[ri] >= 0 {
				rng = output[loc[ri]:loc[ri+1]]
			}
			if name := p.kind.packageName(output[loc[ni]:loc[ni+1]], rng); name != "" {
				best, bestAt = name, loc[0]
				break
			}
		}
	}
	return best
}

// packageName turns what a message named into a package name, or "" when it
// is not one (a relative import, a path alias, a tarball URL). rng is a
// version range the message gave apart from the name.
func (k missingKind) packageName(s, rng string) string {
	switch k {
	case specName, specVersion:
		name := s
		if rng == "" {
			name, rng = splitSpec(s)
		}
		rng = strings.TrimPrefix(rng, "npm:")
		if k == specVersion && rng != "" && validName(name) != "" {
			return name + "@" + rng
		}
		return validName(name)
	case urlName:
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		if strings.HasSuffix(s, ".tgz") {
			return ""
		}
		return validName(s)
	case moduleName:
		return moduleToPackage(s)
	case binaryName:
		return binaryPackages[s]
	}
	return ""
}

// splitSpec splits "name@range" ("@scope/name@range" keeps its leading @).
func splitSpec(s string) (name, rng string) {
	if i := strings.LastIndexByte(s, '@'); i > 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// moduleToPackage returns the package an import specifier refers to:
// "lodash/fp" → "lodash", "@tanstack/react-query/build" →
// "@tanstack/react-query". A path inside node_modules names its package too.
// Relative and absolute paths, node: built-ins, virtual modules and path
// aliases (@/…, ~/…, #…) are not packages.
func moduleToPackage(spec string) string {
	if i := strings.LastIndex(spec, "/node_modules/"); i >= 0 {
		spec = spec[i+len("/node_modules/"):]
	}
	if spec == "" || strings.ContainsAny(spec[:1], "./~#\\") || strings.Contains(spec, ":") ||
		strings.HasPrefix(spec, "@/") {
		return ""
	}
	parts := strings.SplitN(spec, "/", 3)
	name := parts[0]
	if strings.HasPrefix(name, "@") {
		if len(parts) < 2 {
			return ""
		}
		name += "/" + parts[1]
	}
	return validName(name)
}

func validName(name string) string {
	if len(name) > 214 || !npmNameRe.MatchString(name) {
		return ""
	}
	return name
}
