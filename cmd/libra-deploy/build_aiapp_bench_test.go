package main_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/build"
)

// aiAppDir is the profile project of issue 13: what AI app builders
// generate (create-vite react-ts, Vite 6, React 19, Tailwind 4, every Radix
// UI primitive, router, query, charts, forms, wrangler among the
// devDependencies), about 50 dependencies and no lockfile.
const aiAppDir = "testdata/aiapp"

// aiApp reads the profile project as a deployment's initFiles.
func aiApp(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	err := filepath.WalkDir(aiAppDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(aiAppDir, p)
		out = append(out, map[string]any{"path": filepath.ToSlash(rel), "content": string(b)})
		return nil
	})
	if err != nil {
		tb.Fatalf("read %s: %v", aiAppDir, err)
	}
	return out
}

// editedApp is app with one source file changed, as a redeploy after an
// edit is: its install inputs are the same, its build's are not.
func editedApp(app []map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(app))
	for _, f := range app {
		if f["path"] == "src/App.tsx" {
			f = map[string]any{"path": f["path"], "content": f["content"].(string) + "\n// edited\n"}
		}
		out = append(out, f)
	}
	return out
}

// benchPackageManagers are the package managers BenchmarkBuildAIApp runs:
// LIBRA_BENCH_PM (comma-separated) when set, else npm alone.
func benchPackageManagers() []string {
	if v := os.Getenv("LIBRA_BENCH_PM"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"npm"}
}

// BenchmarkBuildAIApp builds the profile project (testdata/aiapp) side by
// side in one run, for each package manager asked for:
//
//   - raw: the plan's own install and build commands (build.Detect, so the
//     same flags the service uses) in a shell in a temporary directory,
//     with an empty package-manager cache and the sandbox's environment;
//     once before and once after the service's runs, so that warming of the
//     registry's or the network's caches favours neither side; the ratios
//     use their mean. The second raw run is then repeated warm
//     (node_modules, cache and the lockfile its install wrote in place):
//     the floor a warm redeploy can reach.
//   - service cold: POST /deploy to completed on a fresh data directory
//     (empty org cache, empty package-manager cache), real bwrap;
//   - service warm: the unchanged project deployed again by the same org
//     (the earlier build's output is published: workflow/buildreuse.go);
//   - service edited: deployed again with src/App.tsx changed, so it
//     restores node_modules, skips the install and builds.
//
// Phases: install and build as the deployment's log times them, publish as
// its deploy step. Run it with `make bench-build`, or
//
//	LIBRA_BENCH_PM=npm,pnpm,bun go test ./cmd/libra-deploy -run '^$' -bench BenchmarkBuildAIApp -benchtime 1x
func BenchmarkBuildAIApp(b *testing.B) {
	if testing.Short() {
		b.Skip("installs from the npm registry")
	}
	for _, pm := range benchPackageManagers() {
		b.Run(pm, func(b *testing.B) {
			if _, err := exec.LookPath(pm); err != nil {
				b.Skipf("%s is not installed", pm)
			}
			benchAIApp(b, pm)
		})
	}
}

// aiAppRun is what one side-by-side run measured.
type aiAppRun struct {
	pm                       string
	rawBefore, rawAfter, raw rawTiming
	rawWarm                  rawTiming
	cold, warm, edited       timedDeployment
}

func benchAIApp(b *testing.B, pm string) {
	app := aiApp(b)
	plan, err := build.Detect(aiAppDir, build.Options{DefaultPackageManager: pm})
	if err != nil {
		b.Fatal(err)
	}
	load0 := loadAverage()
	r := aiAppRun{pm: pm}
	r.rawBefore = rawPlanBuild(b, app, plan, pm, false).cold

	s := startServer(b, "BUILD_DEFAULT_PACKAGE_MANAGER="+pm)
	tok := s.setup("bench", "react")
	r.cold = timedDeploy(b, s, tok, "cold", app)
	if !r.cold.hasLog("no cached node_modules for this lockfile: cold install") {
		b.Fatalf("the first deployment was not a cold install:\n%s", strings.Join(r.cold.logs, "\n"))
	}
	r.warm = timedDeploy(b, s, tok, "warm", app)
	if !r.warm.hasLog("its build output is published again") {
		b.Fatalf("the unchanged redeploy did not reuse the build:\n%s", strings.Join(r.warm.logs, "\n"))
	}
	r.edited = timedDeploy(b, s, tok, "edited", editedApp(app))
	if !r.edited.hasLog("node_modules restored from this org's build cache") {
		b.Fatalf("the edited redeploy did not restore node_modules:\n%s", strings.Join(r.edited.logs, "\n"))
	}
	after := rawPlanBuild(b, app, plan, pm, true)
	r.rawAfter, r.rawWarm = after.cold, after.warmLocked
	r.raw = meanTiming(r.rawBefore, r.rawAfter)

	fmt.Fprintf(os.Stderr, "\nBenchmarkBuildAIApp/%s (testdata/aiapp, no lockfile; install %q; load average %s at start, %s at end)\n",
		pm, strings.Join(plan.InstallCommand, " "), load0, loadAverage())
	r.print()
	r.report(b)
}

func meanTiming(a, c rawTiming) rawTiming {
	return rawTiming{install: (a.install + c.install) / 2, build: (a.build + c.build) / 2, total: (a.total + c.total) / 2}
}

// ratio is a/c, 0 when c is zero.
func ratio(a, c time.Duration) float64 {
	if c <= 0 {
		return 0
	}
	return a.Seconds() / c.Seconds()
}

func (r aiAppRun) print() {
	w := os.Stderr
	fmt.Fprintf(w, "  %-38s %9s %9s %9s %9s\n", "", "total", "install", "build", "publish")
	row := func(name string, total, inst, bld, pub time.Duration) {
		p := "-"
		if pub > 0 {
			p = secs(pub)
		}
		fmt.Fprintf(w, "  %-38s %9s %9s %9s %9s\n", name, secs(total), secs(inst), secs(bld), p)
	}
	row("raw cold, before the service", r.rawBefore.total, r.rawBefore.install, r.rawBefore.build, 0)
	row("raw cold, after the service", r.rawAfter.total, r.rawAfter.install, r.rawAfter.build, 0)
	row("raw warm (node_modules, lockfile kept)", r.rawWarm.total, r.rawWarm.install, r.rawWarm.build, 0)
	row("service cold (POST -> completed)", r.cold.total, r.cold.phase["install"], r.cold.phase["build"], r.cold.step["deploy"])
	row("service warm (same org, unchanged)", r.warm.total, r.warm.phase["install"], r.warm.phase["build"], r.warm.step["deploy"])
	row("service warm, src/App.tsx edited", r.edited.total, r.edited.phase["install"], r.edited.phase["build"], r.edited.step["deploy"])
	fmt.Fprintf(w, "  cold deployment / raw install+build (mean %s) = %.2fx (target <= 1.10x)\n", secs(r.raw.total), ratio(r.cold.total, r.raw.total))
	fmt.Fprintf(w, "  cold install    / raw install                  = %.2fx\n", ratio(r.cold.phase["install"], r.raw.install))
	fmt.Fprintf(w, "  build (cold)    / raw build                    = %.2fx (target <= 1.05x)\n", ratio(r.cold.phase["build"], r.raw.build))
	fmt.Fprintf(w, "  build (edited)  / raw warm build               = %.2fx\n", ratio(r.edited.phase["build"], r.rawWarm.build))
	fmt.Fprintf(w, "  warm redeploy end to end, unchanged            = %s (target <= 6s)\n", secs(r.warm.total))
	fmt.Fprintf(w, "  warm redeploy end to end, one file edited      = %s (raw warm %s)\n", secs(r.edited.total), secs(r.rawWarm.total))
	for _, d := range []timedDeployment{r.cold, r.warm, r.edited} {
		fmt.Fprintf(w, "  steps of the %s deployment:", d.name)
		for _, step := range []string{"validate", "sync", "sandbox", "build", "deploy", "cleanup"} {
			fmt.Fprintf(w, " %s %s", step, secs(d.step[step]))
		}
		fmt.Fprintf(w, "; queued %s\n", secs(d.queued))
	}
}

func (r aiAppRun) report(b *testing.B) {
	for _, m := range []struct {
		v    float64
		unit string
	}{
		{r.raw.total.Seconds(), "raw-cold-s"},
		{r.raw.install.Seconds(), "raw-install-s"},
		{r.raw.build.Seconds(), "raw-build-s"},
		{r.cold.total.Seconds(), "cold-s"},
		{r.cold.phase["install"].Seconds(), "cold-install-s"},
		{r.cold.phase["build"].Seconds(), "cold-build-s"},
		{r.cold.step["deploy"].Seconds(), "cold-publish-s"},
		{r.warm.total.Seconds(), "warm-s"},
		{r.warm.phase["install"].Seconds(), "warm-install-s"},
		{r.warm.phase["build"].Seconds(), "warm-build-s"},
		{r.warm.step["deploy"].Seconds(), "warm-publish-s"},
		{r.edited.total.Seconds(), "edited-s"},
		{r.edited.phase["build"].Seconds(), "edited-build-s"},
		{ratio(r.cold.total, r.raw.total), "cold-ratio-x"},
		{ratio(r.cold.phase["install"], r.raw.install), "install-ratio-x"},
		{ratio(r.cold.phase["build"], r.raw.build), "build-ratio-x"},
	} {
		b.ReportMetric(m.v, m.unit)
	}
}

// rawPlanBuild is rawBuild with the plan's commands for pm, and pm's cache
// directories (build.Cache.Env) pointed at an empty directory.
func rawPlanBuild(b *testing.B, app []map[string]any, plan *build.Plan, pm string, again bool) rawRuns {
	b.Helper()
	return rawBuildWith(b, app, rawOptions{
		install: plan.InstallCommand,
		build:   plan.BuildCommand,
		env: func(cache string) map[string]string {
			return build.NewCache("").Env(pm, cache)
		},
		lockfile: lockfileOf(pm),
	}, again)
}

// lockfileOf is the lockfile pm writes when it installs a project without one.
func lockfileOf(pm string) string {
	switch pm {
	case "pnpm":
		return "pnpm-lock.yaml"
	case "bun":
		return "bun.lock"
	case "yarn":
		return "yarn.lock"
	}
	return "package-lock.json"
}
