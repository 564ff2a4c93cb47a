package main_test

import (
	"strings"
	"testing"
	"time"
)

// TestUnchangedRedeployReusesBuild: deploying a project whose files, build
// settings and environment are unchanged publishes the earlier build's
// output without a sandbox, install or build; a changed file, a changed
// variable, another project with the same files, or BUILD_REUSE=off each
// build again. The build writes a random token into its page, so a page
// that keeps its token was not built again.
func TestUnchangedRedeployReusesBuild(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tok := s.setup("acme", "reuse")
	otherTok := s.setup("globex", "reuse-too")
	app := func(note string) []map[string]any {
		return files(
			"package.json", `{"name": "reuse", "private": true, "scripts": {"build": "node build.js"}}`,
			"build.js", `const fs = require("fs");
fs.mkdirSync("dist", {recursive: true});
fs.writeFileSync("dist/index.html", "token=" + Math.random().toString(36).slice(2) + " mode=" + (process.env.MODE || "none"));
`,
			"notes.txt", note)
	}
	page := func(st response) string {
		t.Helper()
		r := s.do("GET", "/", nil, "Host", s.siteHost(st.str("deploymentId")))
		if r.status != 200 || !strings.HasPrefix(string(r.body), "token=") {
			t.Fatalf("site of %s: %d %q", st.str("deploymentId"), r.status, r.body)
		}
		return string(r.body)
	}
	deploy := func(tok, org, project string, f []map[string]any) (response, string) {
		t.Helper()
		st := deployAndWait(t, s, tok, org, project, f, 2*time.Minute)
		requireCompleted(t, st)
		return st, page(st)
	}
	reused := func(st response) bool { return hasLog(st, "its build output is published again") }

	first, firstPage := deploy(tok, "acme", "reuse", app("v1"))
	if reused(first) || !hasLog(first, "build: npm run build") {
		t.Fatalf("the first deployment did not build:\n%s", strings.Join(logMessages(first), "\n"))
	}

	second, secondPage := deploy(tok, "acme", "reuse", app("v1"))
	logs := strings.Join(logMessages(second), "\n")
	if !hasLog(second, "unchanged since deployment "+first.str("deploymentId")) || hasLog(second, "sandbox ready") ||
		hasLog(second, "build: npm run build") || !hasLog(second, "build skipped") {
		t.Fatalf("the unchanged redeploy built again or did not say it reused %s:\n%s", first.str("deploymentId"), logs)
	}
	if secondPage != firstPage {
		t.Fatalf("the reused output differs: %q, first %q", secondPage, firstPage)
	}
	steps, _ := second.json["steps"].(map[string]any)
	for _, step := range []string{"validate", "sync", "sandbox", "build", "deploy", "cleanup"} {
		if st, _ := steps[step].(map[string]any); st["status"] != "completed" {
			t.Errorf("step %s of the reused deployment: %v", step, steps[step])
		}
	}
	if r := s.do("GET", "/", nil, "Host", "reuse.localhost:"+s.port); string(r.body) != firstPage {
		t.Errorf("production serves %q, want the reused page %q", r.body, firstPage)
	}

	// Each changed input builds again.
	_, changedFile := deploy(tok, "acme", "reuse", app("v2"))
	if changedFile == firstPage {
		t.Errorf("a changed file did not build again")
	}
	if r := s.do("PUT", "/projects/reuse/env/MODE", map[string]any{"value": "fast"}, "Authorization", "Bearer "+tok); r.status != 200 {
		t.Fatalf("set MODE: %d %s", r.status, r.body)
	}
	withEnv, envPage := deploy(tok, "acme", "reuse", app("v2"))
	if reused(withEnv) || !strings.HasSuffix(envPage, "mode=fast") {
		t.Errorf("a changed variable did not build again: reused %v, page %q", reused(withEnv), envPage)
	}
	other, otherPage := deploy(otherTok, "globex", "reuse-too", app("v1"))
	if reused(other) || otherPage == firstPage {
		t.Errorf("another org's project with the same files reused acme's build")
	}

	off := startServer(t, "BUILD_REUSE=off")
	offTok := off.setup("acme", "reuse")
	var offPages []string
	for range 2 {
		st := deployAndWait(t, off, offTok, "acme", "reuse", app("v1"), 2*time.Minute)
		requireCompleted(t, st)
		if hasLog(st, "its build output is published again") {
			t.Fatalf("BUILD_REUSE=off reused a build")
		}
		r := off.do("GET", "/", nil, "Host", off.siteHost(st.str("deploymentId")))
		offPages = append(offPages, string(r.body))
	}
	if offPages[0] == offPages[1] {
		t.Errorf("BUILD_REUSE=off: both builds wrote %q", offPages[0])
	}
}
