package build

import (
	"fmt"
	"regexp"
	"strings"
)

// Frameworks that Detect recognises.
const (
	FrameworkStatic         = "static"           // no package.json, or nothing to build
	FrameworkVite           = "vite"             // Vite without a UI library we know
	FrameworkViteReact      = "vite-react"       //
	FrameworkViteVue        = "vite-vue"         //
	FrameworkViteSvelte     = "vite-svelte"      //
	FrameworkVitePreact     = "vite-preact"      //
	FrameworkViteSolid      = "vite-solid"       //
	FrameworkNext           = "nextjs"           // static export only
	FrameworkAstro          = "astro"            //
	FrameworkSvelteKit      = "sveltekit"        // with adapter-static
	FrameworkNuxt           = "nuxt"             // nuxt generate
	FrameworkCreateReactApp = "create-react-app" //
	FrameworkVueCLI         = "vue-cli"          //
	FrameworkGatsby         = "gatsby"           //
	FrameworkUnknownNode    = "unknown-node"     // a build script, but no framework we know
)

// SPA rules: which rule decided Plan.SPA.
const (
	// SPARuleWrangler: assets.not_found_handling in the wrangler config.
	SPARuleWrangler = "wrangler"
	// SPARule404Page: the project ships a 404.html, so unknown paths get it.
	SPARule404Page = "404-page"
	// SPARuleFramework: the framework routes in the browser, and nothing
	// says otherwise.
	SPARuleFramework = "framework"
	// SPARuleNone: nothing asks for single-page-app fallback.
	SPARuleNone = "none"
)

// frameworkInfo is what we know of a framework's build.
type frameworkInfo struct {
	// outDir is where its build writes the files to publish.
	outDir string
	// spa: its apps route in the browser, so an unknown path must get
	// index.html rather than a 404.
	spa bool
}

var frameworks = map[string]frameworkInfo{
	FrameworkVite:           {outDir: "dist"},
	FrameworkViteReact:      {outDir: "dist", spa: true},
	FrameworkViteVue:        {outDir: "dist", spa: true},
	FrameworkViteSvelte:     {outDir: "dist", spa: true},
	FrameworkVitePreact:     {outDir: "dist", spa: true},
	FrameworkViteSolid:      {outDir: "dist", spa: true},
	FrameworkNext:           {outDir: "out"},
	FrameworkAstro:          {outDir: "dist"},
	FrameworkSvelteKit:      {outDir: "build"},
	FrameworkNuxt:           {outDir: ".output/public"},
	FrameworkCreateReactApp: {outDir: "build", spa: true},
	FrameworkVueCLI:         {outDir: "dist", spa: true},
	FrameworkGatsby:         {outDir: "public"},
}

// fallbackOutputDirs are tried, in order, after a build whose output
// directory was not known in advance.
var fallbackOutputDirs = []string{"dist", "build", "out"}

// Options tune Detect.
type Options struct {
	// DefaultPackageManager is used when the project has neither a lockfile
	// nor a "packageManager" field: "npm" (when empty), "pnpm", "yarn" or
	// "bun".
	DefaultPackageManager string
	// NodeVersion is the Node.js version the sandbox runs, e.g. "v22.11.0".
	// Its major version is part of the cache key.
	NodeVersion string
}

// Plan says how to build a project and what to publish.
type Plan struct {
	// NeedsBuild is false when there is no package.json or it has no
	// "build" script: the files are published as they are, nothing is
	// installed.
	NeedsBuild bool `json:"needsBuild"`
	// PackageManager is "npm", "pnpm", "yarn" or "bun" when the project has
	// a package.json.
	PackageManager string `json:"packageManager,omitempty"`
	// Lockfile is the lockfile that chose PackageManager, "" when none.
	Lockfile string `json:"lockfile,omitempty"`
	// Framework is one of the Framework constants.
	Framework string `json:"framework"`
	// OutputDir is the directory to publish, a clean slash path relative to
	// the project ("." for the project itself). It is "" when it can only
	// be found after the build: see ResolveOutputDir.
	OutputDir string `json:"outputDir,omitempty"`
	// OutputDirConfigured is true when the project's configuration named
	// OutputDir; ResolveOutputDir then never substitutes another directory.
	OutputDirConfigured bool `json:"outputDirConfigured,omitempty"`
	// OutputDirSource says where OutputDir came from, for the build log.
	OutputDirSource string `json:"outputDirSource,omitempty"`
	// SPA asks the site host to answer unknown paths with index.html.
	SPA bool `json:"spa"`
	// SPARule is the SPARule constant that decided SPA; SPAReason says it in
	// words for the build log.
	SPARule   string `json:"spaRule"`
	SPAReason string `json:"spaReason"`
	// InstallCommand and BuildCommand are run in the project directory, in
	// that order, when NeedsBuild.
	InstallCommand []string `json:"installCommand,omitempty"`
	BuildCommand   []string `json:"buildCommand,omitempty"`
	// CacheKey identifies the node_modules tree the install produces; see
	// Cache. Empty when nothing is installed.
	CacheKey string `json:"cacheKey,omitempty"`
	// InstallScripts: package.json has a script that the install runs
	// (postinstall, prepare, ...), which may write anywhere in the project:
	// the install is never skipped (see InstallInputs).
	InstallScripts bool `json:"installScripts,omitempty"`
	// Warnings are things the user should fix or know; the build goes on.
	Warnings []string `json:"warnings,omitempty"`
}

// Detect reads the project in dir and plans its build. It reads files only;
// it runs nothing. Errors caused by the project are permanent (see package
// doc); others (an unreadable disk) are not.
func Detect(dir string, opts Options) (*Plan, error) {
	defaultPM := opts.DefaultPackageManager
	if defaultPM == "" {
		defaultPM = "npm"
	}
	if !validPackageManager(defaultPM) {
		return nil, fmt.Errorf("build: unknown default package manager %q", defaultPM)
	}

	wrangler, warnings, err := readWrangler(dir)
	if err != nil {
		return nil, err
	}
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	plan := &Plan{Framework: FrameworkStatic, Warnings: warnings}
	if m != nil {
		if err := planPackage(dir, m, defaultPM, plan); err != nil {
			return nil, err
		}
	}

	switch {
	case wrangler != nil && wrangler.OutputDir != "":
		plan.OutputDir = wrangler.OutputDir
		plan.OutputDirConfigured = true
		plan.OutputDirSource = wrangler.File + " " + wrangler.OutputKey
	case !plan.NeedsBuild:
		plan.OutputDir = "."
		plan.OutputDirSource = "no build step: the project's files are published as they are"
	default:
		planFrameworkOutput(dir, m, plan)
	}
	if plan.NeedsBuild && plan.OutputDir == "." {
		plan.Warnings = append(plan.Warnings, "the whole project directory is published, sources and node_modules included: point assets.directory at the build's output instead")
	}
	if err := decideSPA(dir, plan, wrangler); err != nil {
		return nil, err
	}

	if plan.NeedsBuild {
		plan.CacheKey, err = cacheKey(dir, plan.Lockfile, plan.PackageManager, nodeMajor(opts.NodeVersion), m)
		if err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// planPackage fills in what package.json decides: framework, package
// manager, commands.
func planPackage(dir string, m *manifest, defaultPM string, plan *Plan) error {
	plan.NeedsBuild = m.Build != ""
	plan.InstallScripts = m.InstallScripts
	lockfile, pm, warnings, err := findLockfile(dir)
	if err != nil {
		return err
	}
	plan.Warnings = append(plan.Warnings, warnings...)
	fieldPM, fieldMajor := m.packageManagerField()
	if pm == "" {
		// With no lockfile, the corepack field is the project's own word on
		// its package manager; the service's default comes last.
		pm = defaultPM
		if fieldPM != "" {
			pm = fieldPM
		}
	}
	plan.PackageManager, plan.Lockfile = pm, lockfile

	fw, err := detectFramework(dir, m)
	if err != nil {
		return err
	}
	plan.Framework = fw
	if !plan.NeedsBuild {
		if fw == FrameworkUnknownNode {
			plan.Framework = FrameworkStatic
		} else {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf(`package.json uses %s but has no "build" script: the files are published as they are, unbuilt`, fw))
		}
		return nil
	}
	plan.Warnings = append(plan.Warnings, frameworkWarnings(dir, m, fw)...)

	inSync, known := false, false
	if lockfile != "" {
		inSync, known = lockfileSync(dir, lockfile, m)
		if known && !inSync {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s does not match package.json (a dependency was added, removed or changed without updating it): it is updated during the install instead of being followed exactly", lockfile))
		}
	}
	berry := pm == "yarn" && isYarnBerry(dir, lockfile, fieldPM, fieldMajor)
	plan.InstallCommand = installCommand(pm, lockfile, inSync || !known, berry)
	plan.BuildCommand = []string{pm, "run", "build"}
	return nil
}

// installCommand chooses the install command. frozen means the lockfile
// exists and is to be followed exactly.
//
// npm always gets `npm install`, never `npm ci`: npm ci deletes node_modules
// first, which would throw away the tree that Cache just restored, and it
// fails outright on a lockfile that lags package.json. npm install follows
// package-lock.json whenever the lockfile satisfies package.json, so a
// well-kept project still gets exactly its locked versions.
// --legacy-peer-deps because generated projects often pin peers that
// conflict (a React 19 app with a plugin that declares React 18) and npm,
// unlike pnpm, bun and yarn, refuses to install them at all.
//
// The others follow their lockfile frozen, which is faster and
// reproducible, unless lockfileSync showed it to be stale. Without a
// lockfile, pnpm and yarn berry get the frozen mode switched off explicitly
// because both turn it on by themselves when CI is set.
func installCommand(pm, lockfile string, frozen, berry bool) []string {
	hasLock := lockfile != ""
	switch pm {
	case "pnpm":
		// pnpm 11 and later fail the install when a dependency has a
		// build script nobody approved (strictDepBuilds); such scripts are
		// skipped either way, as npm 11 and bun skip them, so only the
		// failure is switched off. Older pnpm ignores the setting.
		mode := "--no-frozen-lockfile"
		if hasLock && frozen {
			mode = "--frozen-lockfile"
		}
		return []string{"pnpm", "install", mode, "--config.strict-dep-builds=false"}
	case "yarn":
		switch {
		case berry && hasLock && frozen:
			return []string{"yarn", "install", "--immutable"}
		case berry:
			return []string{"yarn", "install", "--no-immutable"}
		case hasLock && frozen:
			return []string{"yarn", "install", "--frozen-lockfile"}
		}
		return []string{"yarn", "install"}
	case "bun":
		// bun.lockb is binary: we cannot tell whether it is current, and
		// bun install follows it anyway when it is.
		if lockfile == "bun.lock" && frozen {
			return []string{"bun", "install", "--frozen-lockfile"}
		}
		return []string{"bun", "install"}
	}
	return []string{"npm", "install", "--no-audit", "--no-fund", "--legacy-peer-deps"}
}

// isYarnBerry tells Yarn 2+ from Yarn 1: their flags differ.
func isYarnBerry(dir, lockfile, fieldPM string, fieldMajor int) bool {
	if fieldPM == "yarn" && fieldMajor >= 2 {
		return true
	}
	if ok, _ := isRegular(dir, ".yarnrc.yml"); ok {
		return true
	}
	if lockfile == "yarn.lock" {
		src, _, err := readProjectFile(dir, lockfile, maxLockfileScan)
		// Only berry lockfiles have a __metadata entry.
		return err == nil && strings.Contains(string(src), "\n__metadata:")
	}
	return false
}

// configExts are the extensions a JavaScript config file may have.
var configExts = []string{".js", ".mjs", ".cjs", ".ts", ".mts", ".cts"}

// findConfig returns the first of base+ext that exists, e.g.
// "vite.config.ts", or "".
func findConfig(dir, base string) (string, error) {
	for _, ext := range configExts {
		ok, err := isRegular(dir, base+ext)
		if err != nil {
			return "", err
		}
		if ok {
			return base + ext, nil
		}
	}
	return "", nil
}

// readConfigJS returns a JavaScript config file with its comments blanked,
// so that a commented-out `output: 'export'` does not count. "" when absent.
func readConfigJS(dir, base string) (name, text string) {
	name, err := findConfig(dir, base)
	if err != nil || name == "" {
		return "", ""
	}
	src, _, err := readProjectFile(dir, name, maxConfigSize)
	if err != nil {
		return name, ""
	}
	clean, err := stripComments(src, "\"'`")
	if err != nil {
		// An unclosed comment: the build will say so; read it as written.
		clean = src
	}
	return name, string(clean)
}

// detectFramework recognises the framework from the dependencies and, for
// projects that list it oddly, its config file. Meta-frameworks come first:
// a Next.js or Astro app also depends on react, and SvelteKit on vite.
func detectFramework(dir string, m *manifest) (string, error) {
	hasConfig := func(base string) (bool, error) {
		name, err := findConfig(dir, base)
		return name != "", err
	}
	checks := []struct {
		fw     string
		deps   []string
		config string
	}{
		{FrameworkNext, []string{"next"}, "next.config"},
		{FrameworkNuxt, []string{"nuxt", "nuxt3"}, "nuxt.config"},
		// svelte.config.js alone is no sign of SvelteKit: plain Vite +
		// Svelte projects have one too.
		{FrameworkSvelteKit, []string{"@sveltejs/kit"}, ""},
		{FrameworkAstro, []string{"astro"}, "astro.config"},
		{FrameworkGatsby, []string{"gatsby"}, "gatsby-config"},
		{FrameworkCreateReactApp, []string{"react-scripts"}, ""},
		{FrameworkVueCLI, []string{"@vue/cli-service"}, "vue.config"},
	}
	for _, c := range checks {
		if m.has(c.deps...) {
			return c.fw, nil
		}
		if c.config != "" {
			ok, err := hasConfig(c.config)
			if err != nil {
				return "", err
			}
			if ok {
				return c.fw, nil
			}
		}
	}
	isVite := m.has("vite", "rolldown-vite")
	if !isVite {
		ok, err := hasConfig("vite.config")
		if err != nil {
			return "", err
		}
		isVite = ok
	}
	if !isVite {
		return FrameworkUnknownNode, nil
	}
	// The Vite plugin says more than the library: a Vue app may pull in a
	// React-based component library, never the React plugin.
	flavours := []struct {
		fw      string
		plugins []string
		libs    []string
	}{
		{FrameworkViteReact, []string{"@vitejs/plugin-react", "@vitejs/plugin-react-swc"}, []string{"react"}},
		{FrameworkViteVue, []string{"@vitejs/plugin-vue"}, []string{"vue"}},
		{FrameworkViteSvelte, []string{"@sveltejs/vite-plugin-svelte"}, []string{"svelte"}},
		{FrameworkVitePreact, []string{"@preact/preset-vite"}, []string{"preact"}},
		{FrameworkViteSolid, []string{"vite-plugin-solid"}, []string{"solid-js"}},
	}
	for _, f := range flavours {
		if m.has(f.plugins...) {
			return f.fw, nil
		}
	}
	for _, f := range flavours {
		if m.has(f.libs...) {
			return f.fw, nil
		}
	}
	return FrameworkVite, nil
}

var (
	nextExportRe  = regexp.MustCompile(`\boutput\s*:\s*['"` + "`" + `]export['"` + "`" + `]`)
	astroServerRe = regexp.MustCompile(`\boutput\s*:\s*['"` + "`" + `](server|hybrid)['"` + "`" + `]`)
	outDirRe      = regexp.MustCompile(`\boutDir\s*:\s*['"` + "`" + `]([^'"` + "`" + `]+)['"` + "`" + `]`)
	rootOptionRe  = regexp.MustCompile(`\broot\s*:`)
	outDirFlagRe  = regexp.MustCompile(`--outDir(?:=|\s+)['"]?([^\s'"]+)`)
)

// frameworkWarnings are the known ways a framework's default build does not
// produce a static site.
func frameworkWarnings(dir string, m *manifest, fw string) []string {
	switch fw {
	case FrameworkNext:
		name, text := readConfigJS(dir, "next.config")
		if name == "" {
			return []string{"Next.js is published as a static export, and there is no next.config.js: add one with output: 'export', or `next build` writes no out/ directory"}
		}
		if !nextExportRe.MatchString(text) {
			return []string{fmt.Sprintf("Next.js is published as a static export: set output: 'export' in %s, or `next build` writes no out/ directory", name)}
		}
	case FrameworkSvelteKit:
		if !m.has("@sveltejs/adapter-static") {
			return []string{"SvelteKit is published as static files: use @sveltejs/adapter-static in svelte.config.js, or the build writes no build/ directory"}
		}
	case FrameworkNuxt:
		if !strings.Contains(m.Build, "generate") {
			return []string{"Nuxt is published as static files from .output/public: make the build script `nuxt generate` so that its pages are rendered to HTML"}
		}
	case FrameworkAstro:
		if name, text := readConfigJS(dir, "astro.config"); astroServerRe.MatchString(text) {
			return []string{fmt.Sprintf("%s asks for server rendering: only the static files of the build are published", name)}
		}
	}
	return nil
}

// planFrameworkOutput sets the output directory a build is expected to
// write: an --outDir in the build script, an outDir in the Vite or Astro
// config, or the framework's default. Unknown frameworks leave it "" for
// ResolveOutputDir.
func planFrameworkOutput(dir string, m *manifest, plan *Plan) {
	info, known := frameworks[plan.Framework]
	if !known {
		return
	}
	plan.OutputDir = info.outDir
	plan.OutputDirSource = "default for " + plan.Framework

	try := func(raw, source string) bool {
		clean, err := cleanRelDir(raw)
		if err != nil {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s %q is ignored: it %v", source, raw, err))
			return false
		}
		plan.OutputDir, plan.OutputDirSource = clean, source
		return true
	}
	isVite := strings.HasPrefix(plan.Framework, "vite")
	if !isVite && plan.Framework != FrameworkAstro {
		return
	}
	if isVite {
		if f := outDirFlagRe.FindStringSubmatch(m.Build); f != nil && try(f[1], "the build script's --outDir") {
			return
		}
	}
	base := "vite.config"
	if !isVite {
		base = "astro.config"
	}
	name, text := readConfigJS(dir, base)
	matches := outDirRe.FindAllStringSubmatch(text, -1)
	// Only a single, unambiguous outDir is taken; with a custom root the
	// path is relative to that root and we leave it to ResolveOutputDir.
	if len(matches) == 1 && !rootOptionRe.MatchString(text) {
		try(matches[0][1], name+" outDir")
	}
}
