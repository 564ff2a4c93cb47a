package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Framework and package-manager detection end to end: real projects,
// deployed through the API, built in the real sandbox and served by the
// site host.

// msIntegrity is the npm registry's integrity of ms@2.0.0, the tiny package
// the lockfile tests pin. Its newest 2.x is 2.1.3, so a build that reports
// 2.0.0 for "^2.0.0" followed its lockfile.
const msIntegrity = "sha512-Tpp60P6IUJDTuOq/5Z8cdskzJujfwqfOTkrwIwj7IRISpnkJnT6SyJ4PCPnGMoFjC9ddhal5KVIYtAt97ix05A=="

// msBuildJS publishes the version of ms that the install put in node_modules.
const msBuildJS = `const fs = require("fs");
const version = require("ms/package.json").version;
console.log("built with ms " + version);
fs.mkdirSync("dist", {recursive: true});
fs.writeFileSync("dist/index.html", "<p>ms " + version + " says " + require("ms")(60000) + "</p>");
`

// hasLog reports whether one of the deployment's log lines contains sub.
func hasLog(st response, sub string) bool {
	for _, m := range logMessages(st) {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// deployAndWait deploys f as project of org and waits for the final status.
func deployAndWait(t *testing.T, s *server, tok, org, project string, f []map[string]any, timeout time.Duration) response {
	t.Helper()
	return s.waitFinal(deployFiles(s, tok, org, project, f).str("deploymentId"), timeout)
}

func requireCompleted(t *testing.T, st response) {
	t.Helper()
	if st.str("status") != "completed" {
		t.Fatalf("deployment %s: %s\nlogs:\n%s", st.str("status"), st.str("error"), tail(strings.Join(logMessages(st), "\n"), 4000))
	}
}

// viteVueApp is what `npm create vite@latest -- --template vue` produces
// (create-vite 9), trimmed, with no lockfile.
func viteVueApp(title string) []map[string]any {
	return files(
		"package.json", `{
  "name": "vite-vue-starter", "private": true, "version": "0.0.0", "type": "module",
  "scripts": {"dev": "vite", "build": "vite build", "preview": "vite preview"},
  "dependencies": {"vue": "^3.5.0"},
  "devDependencies": {"@vitejs/plugin-vue": "^6.0.0", "vite": "^7.0.0"}
}`,
		"index.html", `<!doctype html>
<html lang="en">
  <head><meta charset="UTF-8" /><meta name="viewport" content="width=device-width, initial-scale=1.0" /><title>`+title+`</title></head>
  <body><div id="app"></div><script type="module" src="/src/main.js"></script></body>
</html>`,
		"vite.config.js", `import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

// https://vite.dev/config/
export default defineConfig({
  plugins: [vue()],
})`,
		"src/main.js", `import { createApp } from 'vue'
import './style.css'
import App from './App.vue'

createApp(App).mount('#app')`,
		"src/App.vue", `<script setup>
import HelloWorld from './components/HelloWorld.vue'
</script>

<template>
  <HelloWorld msg="`+title+`" />
</template>`,
		"src/components/HelloWorld.vue", `<script setup>
import { ref } from 'vue'

defineProps({ msg: String })
const count = ref(0)
</script>

<template>
  <h1>{{ msg }}</h1>
  <button type="button" @click="count++">count is {{ count }}</button>
</template>

<style scoped>
h1 { color: #42b883; }
</style>`,
		"src/style.css", `:root { font-family: system-ui, sans-serif; color-scheme: light dark; }
#app { max-width: 1280px; margin: 0 auto; text-align: center; }`,
	)
}

var (
	vueJSRef  = regexp.MustCompile(`/assets/index-[A-Za-z0-9_-]+\.js`)
	vueCSSRef = regexp.MustCompile(`/assets/index-[A-Za-z0-9_-]+\.css`)
)

func TestBuildViteVueApp(t *testing.T) {
	if testing.Short() {
		t.Skip("installs vue and vite from the npm registry")
	}
	t.Parallel()
	s := startServer(t)
	tok := s.setup("acme", "vue-app")
	st := deployAndWait(t, s, tok, "acme", "vue-app", viteVueApp("Hello Vue"), 5*time.Minute)
	requireCompleted(t, st)
	if !hasLog(st, "vite-vue project, npm (no lockfile)") || !hasLog(st, "build output: dist/") {
		t.Errorf("plan not logged as a Vite Vue app built into dist/: %s", strings.Join(logMessages(st), "\n"))
	}

	host := "vue-app.localhost:" + s.port
	page := s.do("GET", "/", nil, "Host", host)
	js, css := vueJSRef.FindString(string(page.body)), vueCSSRef.FindString(string(page.body))
	if page.status != 200 || !strings.Contains(string(page.body), "<title>Hello Vue</title>") || js == "" || css == "" {
		t.Fatalf("index.html: %d %s", page.status, page.body)
	}
	if strings.Contains(string(page.body), "/src/main.js") {
		t.Fatalf("the unbuilt index.html was published: %s", page.body)
	}
	tests := []struct {
		path, ctype string
		want        []string
	}{
		// The compiled template keeps its text; the component's prop is in
		// the bundle too.
		{js, "javascript", []string{"count is", "Hello Vue"}},
		// Global and scoped styles end up in the one CSS file.
		{css, "text/css", []string{"1280px", "42b883"}},
	}
	for _, tt := range tests {
		r := s.do("GET", tt.path, nil, "Host", host)
		if r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), tt.ctype) || !strings.Contains(r.header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %q %q", tt.path, r.status, r.header.Get("Content-Type"), r.header.Get("Cache-Control"))
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(string(r.body), w) {
				t.Errorf("%s does not contain %q", tt.path, w)
			}
		}
	}
	// A client-side route gets the app; a missing asset does not.
	if r := s.do("GET", "/users/42", nil, "Host", host); r.status != 200 || !strings.Contains(string(r.body), "Hello Vue") {
		t.Errorf("SPA fallback: %d %.200s", r.status, r.body)
	}
	if r := s.do("GET", "/assets/missing-abc123.js", nil, "Host", host); r.status != 404 {
		t.Errorf("missing asset: %d, want 404", r.status)
	}
	// Only the build output is published.
	for _, p := range []string{"/package.json", "/src/App.vue", "/vite.config.js"} {
		if r := s.do("GET", p, nil, "Host", host); r.status != 404 {
			t.Errorf("%s: %d, want 404 (sources are not published)", p, r.status)
		}
	}
}

func TestStaticSiteWithPackageJSONButNoBuild(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tok := s.setup("acme", "plain")
	tests := []struct {
		name    string
		pkg     string
		warning string // a log line the plan must add, "" for none
	}{
		{"scripts without build", `{"name": "plain", "private": true, "scripts": {"start": "npx serve .", "test": "echo ok"}}`, ""},
		{"no scripts at all", `{"name": "plain", "version": "1.0.0"}`, ""},
		{"vite listed but never built", `{"name": "plain", "devDependencies": {"vite": "^7.0.0"}, "scripts": {"dev": "vite"}}`,
			`has no "build" script: the files are published as they are, unbuilt`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := "plain page " + tt.name
			st := deployAndWait(t, s, tok, "acme", "plain", files(
				"package.json", tt.pkg,
				"index.html", "<!doctype html><h1>"+marker+"</h1>",
				"about/index.html", "<h1>about</h1>",
				"css/site.css", "h1{color:teal}",
			), time.Minute)
			requireCompleted(t, st)
			if !hasLog(st, "no build script: a static site needs no sandbox") || !hasLog(st, "publishing the files as they are") {
				t.Errorf("not planned as a static site: %s", strings.Join(logMessages(st), "\n"))
			}
			for _, m := range logMessages(st) {
				if strings.HasPrefix(m, "install:") || strings.HasPrefix(m, "build:") {
					t.Errorf("something ran for a project without a build script: %s", m)
				}
			}
			if tt.warning != "" && !hasLog(st, tt.warning) {
				t.Errorf("no warning %q: %s", tt.warning, strings.Join(logMessages(st), "\n"))
			}
			host := s.siteHost(st.str("deploymentId"))
			checks := []struct{ path, ctype, want string }{
				{"/", "text/html", marker},
				{"/about/", "text/html", "about"},
				{"/css/site.css", "text/css", "teal"},
			}
			for _, c := range checks {
				r := s.do("GET", c.path, nil, "Host", host)
				if r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), c.ctype) || !strings.Contains(string(r.body), c.want) {
					t.Errorf("GET %s: %d %q %.200s", c.path, r.status, r.header.Get("Content-Type"), r.body)
				}
			}
			// The production alias follows the newest deployment.
			if r := s.do("GET", "/", nil, "Host", "plain.localhost:"+s.port); r.status != 200 || !strings.Contains(string(r.body), marker) {
				t.Errorf("alias after deployment %d: %d %.200s", i, r.status, r.body)
			}
		})
	}
}

// npmLockedProject is a project whose package-lock.json, made by the npm on
// this machine, pins ms@2.0.0 while package.json asks for ^2.0.0.
func npmLockedProject(t *testing.T) []map[string]any {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name": "locked-app", "version": "1.0.0", "private": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("npm", "install", "--package-lock-only", "--no-audit", "--no-fund",
		"--omit-lockfile-registry-resolved=false", "ms@2.0.0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(dir, ".npm-cache"), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install --package-lock-only: %v\n%s", err, out)
	}
	pkg, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest map[string]any
	if err := json.Unmarshal(pkg, &manifest); err != nil {
		t.Fatalf("package.json written by npm: %v\n%s", err, pkg)
	}
	deps, _ := manifest["dependencies"].(map[string]any)
	if deps["ms"] != "^2.0.0" || !strings.Contains(string(lock), `"version": "2.0.0"`) {
		t.Fatalf("unexpected lockfile set-up:\n%s\n%s", pkg, lock)
	}
	// Scripts do not count for the lockfile: add the build afterwards.
	manifest["scripts"] = map[string]any{"build": "node build.js"}
	withBuild, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return files("package.json", string(withBuild), "package-lock.json", string(lock), "build.js", msBuildJS)
}

func TestBuildWithNpmLockfile(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	t.Parallel()
	s := startServer(t)
	tok := s.setup("acme", "locked")
	st := deployAndWait(t, s, tok, "acme", "locked", npmLockedProject(t), 3*time.Minute)
	requireCompleted(t, st)
	for _, want := range []string{"npm (package-lock.json)", "install: npm install", "built with ms 2.0.0"} {
		if !hasLog(st, want) {
			t.Errorf("log lacks %q:\n%s", want, strings.Join(logMessages(st), "\n"))
		}
	}
	if hasLog(st, "does not match package.json") {
		t.Errorf("a lockfile fresh from npm was called stale:\n%s", strings.Join(logMessages(st), "\n"))
	}
	// ^2.0.0 alone would install 2.1.3: 2.0.0 means the lockfile was followed.
	if r := s.do("GET", "/", nil, "Host", "locked.localhost:"+s.port); r.status != 200 || !strings.Contains(string(r.body), "ms 2.0.0 says 1m") {
		t.Fatalf("site: %d %s", r.status, r.body)
	}
}

// Hand-written lockfiles pinning ms@2.0.0, as pnpm 9+ and bun 1.2+ write
// them, for projects whose package.json asks for exactly 2.0.0.
const (
	pnpmLock = `lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      ms:
        specifier: 2.0.0
        version: 2.0.0

packages:

  ms@2.0.0:
    resolution: {integrity: ` + msIntegrity + `}

snapshots:

  ms@2.0.0: {}
`
	bunLock = `{
  "lockfileVersion": 1,
  "workspaces": {
    "": {
      "name": "locked-app",
      "dependencies": {
        "ms": "2.0.0",
      },
    },
  },
  "packages": {
    "ms": ["ms@2.0.0", "", {}, "` + msIntegrity + `"],
  }
}
`
)

// lockedProjects are the pnpm and bun variants of the ms@2.0.0 project.
var lockedProjects = []struct {
	pm, lockfile, content string
}{
	{"pnpm", "pnpm-lock.yaml", pnpmLock},
	{"bun", "bun.lock", bunLock},
}

func lockedProject(lockfile, content string) []map[string]any {
	return files(
		"package.json", `{"name": "locked-app", "version": "1.0.0", "private": true, "dependencies": {"ms": "2.0.0"}, "scripts": {"build": "node build.js"}}`,
		lockfile, content,
		"build.js", msBuildJS,
	)
}

// sandboxSees finds name on the host's PATH and tells whether the build
// sandbox can run it: the sandbox binds /usr read-only (and /bin and /lib
// through it) and hides /usr/local. where is "" when name is not on PATH.
func sandboxSees(name string) (where string, visible bool) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", false
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return p, false
	}
	return real, strings.HasPrefix(real, "/usr/") && !strings.HasPrefix(real, "/usr/local/")
}

func TestBuildWithPnpmAndBunLockfiles(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	t.Parallel()
	var s *server
	var tok string
	for _, lp := range lockedProjects {
		if _, visible := sandboxSees(lp.pm); visible && s == nil {
			s = startServer(t)
			tok = s.admin("token", "create", "--org", "acme", "--user", "user-acme")
		}
	}
	for _, lp := range lockedProjects {
		t.Run(lp.pm, func(t *testing.T) {
			where, visible := sandboxSees(lp.pm)
			switch {
			case where == "":
				t.Skipf("%s is not on PATH on this host: nothing to build %s with (TestBuildFailsClearlyWithoutPackageManager covers this case)", lp.pm, lp.lockfile)
			case !visible:
				t.Skipf("%s is at %s, which the build sandbox does not see (it binds /usr read-only and hides /usr/local)", lp.pm, where)
			}
			project := lp.pm + "-locked"
			s.admin("project", "create", "--org", "acme", "--id", project)
			st := deployAndWait(t, s, tok, "acme", project, lockedProject(lp.lockfile, lp.content), 3*time.Minute)
			requireCompleted(t, st)
			for _, want := range []string{lp.pm + " (" + lp.lockfile + ")", "install: " + lp.pm + " install", "build: " + lp.pm + " run build", "built with ms 2.0.0"} {
				if !hasLog(st, want) {
					t.Errorf("log lacks %q:\n%s", want, strings.Join(logMessages(st), "\n"))
				}
			}
			if r := s.do("GET", "/", nil, "Host", project+".localhost:"+s.port); r.status != 200 || !strings.Contains(string(r.body), "ms 2.0.0 says 1m") {
				t.Fatalf("site: %d %s", r.status, r.body)
			}
		})
	}
}

// A lockfile of a package manager the sandbox cannot run fails the
// deployment with an error that names it, rather than quietly installing
// with npm.
func TestBuildFailsClearlyWithoutPackageManager(t *testing.T) {
	t.Parallel()
	var s *server
	var tok string
	for _, lp := range lockedProjects {
		if _, visible := sandboxSees(lp.pm); !visible && s == nil {
			s = startServer(t)
			tok = s.admin("token", "create", "--org", "acme", "--user", "user-acme")
		}
	}
	for _, lp := range lockedProjects {
		t.Run(lp.pm, func(t *testing.T) {
			if where, visible := sandboxSees(lp.pm); visible {
				t.Skipf("%s is installed at %s and visible in the sandbox: TestBuildWithPnpmAndBunLockfiles builds with it", lp.pm, where)
			}
			project := lp.pm + "-missing"
			s.admin("project", "create", "--org", "acme", "--id", project)
			st := deployAndWait(t, s, tok, "acme", project, lockedProject(lp.lockfile, lp.content), 2*time.Minute)
			e := st.str("error")
			t.Logf("%s: %s", st.str("status"), e)
			if st.str("status") != "failed" || !strings.Contains(e, lp.pm) || !strings.Contains(e, "not found") {
				t.Fatalf("want a failure naming %s as not found, got %s: %q", lp.pm, st.str("status"), e)
			}
			if !hasLog(st, lp.pm+" ("+lp.lockfile+")") {
				t.Errorf("plan does not name %s and its lockfile:\n%s", lp.pm, strings.Join(logMessages(st), "\n"))
			}
			if stepStatus(st, "build") != "failed" || hasLog(st, "will be retried") {
				t.Errorf("a missing package manager is the project's build failing, once: build step %q", stepStatus(st, "build"))
			}
		})
	}
}

// wranglerJSONC is a Workers static-assets config as people write it:
// comments, trailing commas, assets in a directory the build writes.
const wranglerJSONC = `// Cloudflare Workers: static assets only.
{
  "$schema": "node_modules/wrangler/config-schema.json",
  "name": "spa-site", // the Worker's name
  "compatibility_date": "2025-06-01",
  /* The build writes the site into public-out/;
     dist/ is something else. */
  "assets": {
    "directory": "./public-out",
    "not_found_handling": "single-page-application", // client-side routing
  },
}
`

func TestBuildWranglerAssetsDirectory(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tok := s.setup("acme", "spa")
	tests := []struct {
		name string
		// with404 adds a 404.html to the output: wrangler's
		// single-page-application must still win over it.
		with404 bool
	}{
		{"spa", false},
		{"spa with a 404 page", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			build := `const fs = require("fs");
fs.mkdirSync("public-out/about", {recursive: true});
fs.writeFileSync("public-out/index.html", "<!doctype html><div id=app>wrangler spa index</div><script src=/app.js></script>");
fs.writeFileSync("public-out/app.js", "console.log('wrangler app')");
fs.writeFileSync("public-out/about/index.html", "<h1>about page</h1>");
if (process.argv[2] === "404") fs.writeFileSync("public-out/404.html", "<h1>custom not found</h1>");
fs.mkdirSync("dist", {recursive: true});
fs.writeFileSync("dist/index.html", "WRONG OUTPUT DIRECTORY");
`
			script := "node build.js"
			want := []string{"about/index.html", "app.js", "index.html"}
			if tt.with404 {
				script += " 404"
				want = []string{"404.html", "about/index.html", "app.js", "index.html"}
			}
			st := deployAndWait(t, s, tok, "acme", "spa", files(
				"package.json", `{"name": "spa-site", "private": true, "scripts": {"build": "`+script+`"}}`,
				"wrangler.jsonc", wranglerJSONC,
				"build.js", build,
			), 2*time.Minute)
			requireCompleted(t, st)
			if !hasLog(st, "(wrangler.jsonc assets.directory)") || !hasLog(st, "build output: public-out/") {
				t.Errorf("output directory not taken from wrangler.jsonc:\n%s", strings.Join(logMessages(st), "\n"))
			}
			id := st.str("deploymentId")
			if got := publishedPaths(t, s, id); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("published %v, want %v", got, want)
			}
			host := s.siteHost(id)
			checks := []struct {
				path   string
				status int
				want   string
			}{
				{"/", 200, "wrangler spa index"},
				{"/app.js", 200, "wrangler app"},
				{"/about/", 200, "about page"},
				{"/missing.js", 404, ""},
			}
			for _, c := range checks {
				r := s.do("GET", c.path, nil, "Host", host)
				if r.status != c.status || !strings.Contains(string(r.body), c.want) || strings.Contains(string(r.body), "WRONG OUTPUT") {
					t.Errorf("GET %s: %d %.200s, want %d with %q", c.path, r.status, r.body, c.status, c.want)
				}
			}
			// Unknown routes get index.html, as not_found_handling asks,
			// even when the output has a 404.html. (The site host reads the
			// decision from the manifest: wrangler.jsonc itself is not in
			// the published directory.)
			for _, p := range []string{"/dashboard", "/users/7/settings"} {
				r := s.do("GET", p, nil, "Host", host)
				if r.status == 200 && strings.Contains(string(r.body), "wrangler spa index") {
					continue
				}
				t.Errorf("GET %s: %d %.200s, want 200 with the app's index.html", p, r.status, r.body)
			}
		})
	}
}
