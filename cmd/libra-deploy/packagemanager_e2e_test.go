package main_test

import (
	"strings"
	"testing"
	"time"
)

// TestDefaultPackageManager: with BUILD_DEFAULT_PACKAGE_MANAGER unset, a
// project without a lockfile installs with bun where the sandbox can run
// it (.ci/run installs it), else with pnpm, else with npm, and either way
// installs its dependencies (one with a peer-dependency conflict that
// npm refuses without --legacy-peer-deps) and builds; an edited redeploy
// gets the lockfile that install wrote back with node_modules and skips
// the install.
func TestDefaultPackageManager(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	t.Parallel()
	want := "npm"
	for _, pm := range []string{"bun", "pnpm"} {
		if _, visible := sandboxSees(pm); visible {
			want = pm
			break
		}
	}
	s := startServer(t, "BUILD_DEFAULT_PACKAGE_MANAGER=")
	tok := s.setup("acme", "pm")
	app := files(
		"package.json", `{"name": "pm", "private": true, "scripts": {"build": "node build.js"},
  "dependencies": {"ms": "2.1.3", "react": "19.0.0", "react-day-picker": "8.10.1"}}`,
		"build.js", `const fs = require("fs");
fs.mkdirSync("dist", {recursive: true});
fs.writeFileSync("dist/index.html", "ms=" + require("ms")(60000) + " picker=" + require("react-day-picker/package.json").version);
`)
	st := deployAndWait(t, s, tok, "acme", "pm", app, 3*time.Minute)
	requireCompleted(t, st)
	if !hasLog(st, "install: "+want+" install") || !hasLog(st, ", "+want+" (no lockfile)") {
		t.Fatalf("want the install to use %s:\n%s", want, strings.Join(logMessages(st), "\n"))
	}
	r := s.do("GET", "/", nil, "Host", s.siteHost(st.str("deploymentId")))
	if r.status != 200 || string(r.body) != "ms=1m picker=8.10.1" {
		t.Fatalf("site: %d %q", r.status, r.body)
	}
	if !strings.Contains(s.logs.String(), "projects without a lockfile install with "+want) {
		t.Errorf("the server did not say which package manager it chose:\n%s", tail(s.logs.String(), 3000))
	}

	// Edited (so it builds again): node_modules and the lockfile the first
	// install wrote come back from the org cache, and the install is skipped.
	lockfile := map[string]string{"npm": "package-lock.json", "bun": "bun.lock"}[want]
	st = deployAndWait(t, s, tok, "acme", "pm", append(app, files("notes.txt", "edited")...), 3*time.Minute)
	requireCompleted(t, st)
	if lockfile != "" && (!hasLog(st, lockfile+" from the cached install restored") || !hasLog(st, "install skipped")) {
		t.Errorf("the warm redeploy did not restore %s and skip the install:\n%s", lockfile, strings.Join(logMessages(st), "\n"))
	}
}
