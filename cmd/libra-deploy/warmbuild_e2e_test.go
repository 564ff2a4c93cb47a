package main_test

import (
	"strings"
	"testing"
	"time"
)

// TestWarmRedeploySkipsInstall: a redeploy whose node_modules comes from the
// org's build cache skips the install only when the install would read
// exactly what it read before (package.json, the lockfile kept with the
// cache, package-manager settings) and the project has no install script
// of its own; any change there, or a postinstall, installs again.
func TestWarmRedeploySkipsInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	t.Parallel()
	s := startServer(t)
	tok := s.setup("acme", "warm")
	const buildJS = `const fs = require("fs");
const ms = require("ms");
let gen = "none";
try { gen = fs.readFileSync("generated.txt", "utf8").trim(); } catch {}
fs.mkdirSync("dist", {recursive: true});
fs.writeFileSync("dist/index.html", "ms(60000)=" + ms(60000) + " generated=" + gen);
`
	app := func(version, scripts string) []map[string]any {
		return files(
			"package.json", `{"name": "warm", "private": true, "version": "`+version+`", "dependencies": {"ms": "2.1.3"},
  "scripts": {"build": "node build.js"`+scripts+`}}`,
			"build.js", buildJS)
	}
	postinstall := `, "postinstall": "node -e \"require('fs').writeFileSync('generated.txt', 'by-postinstall')\""`
	steps := []struct {
		name    string
		files   []map[string]any
		skipped bool
		page    string
	}{
		{"cold", app("1.0.0", ""), false, "generated=none"},
		{"unchanged", app("1.0.0", ""), true, "ms(60000)=1m generated=none"},
		{"package.json changed", app("1.0.1", ""), false, "ms(60000)=1m"},
		{"unchanged again", app("1.0.1", ""), true, "ms(60000)=1m"},
		{"with a postinstall", app("1.0.1", postinstall), false, "generated=by-postinstall"},
		{"with a postinstall, unchanged", app("1.0.1", postinstall), false, "generated=by-postinstall"},
	}
	for i, step := range steps {
		// A file no install reads, different each time: an unchanged
		// project would publish the previous build (buildreuse_e2e_test.go).
		f := append(step.files, files("notes.txt", step.name)...)
		st := deployAndWait(t, s, tok, "acme", "warm", f, 3*time.Minute)
		requireCompleted(t, st)
		logs := strings.Join(logMessages(st), "\n")
		if i > 0 && !hasLog(st, "node_modules restored from this org's build cache") {
			t.Fatalf("%s: node_modules not restored:\n%s", step.name, logs)
		}
		if got := hasLog(st, "install skipped"); got != step.skipped {
			t.Errorf("%s: install skipped = %v, want %v:\n%s", step.name, got, step.skipped, logs)
		}
		if got := hasLog(st, "install: npm install"); got == step.skipped {
			t.Errorf("%s: install ran = %v, want %v:\n%s", step.name, got, !step.skipped, logs)
		}
		r := s.do("GET", "/", nil, "Host", s.siteHost(st.str("deploymentId")))
		if r.status != 200 || !strings.Contains(string(r.body), step.page) {
			t.Errorf("%s: site %d %q, want it to contain %q", step.name, r.status, r.body, step.page)
		}
	}
}
