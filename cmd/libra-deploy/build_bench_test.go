package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// BenchmarkBuildViteReact measures a create-vite React app built through the
// service against the same commands run bare on this machine:
//
//   - service cold: POST /deploy to completed on a fresh data directory, so
//     the org's package-manager cache (bwrap CacheDir, bound at /cache, with
//     npm_config_cache=/cache/npm) and its node_modules cache are empty;
//   - service warm: the same project deployed again by the same org:
//     node_modules restored from the org's build cache, npm's cache warm;
//   - raw cold: the service's install and build commands in a shell in a
//     temporary directory, with npm_config_cache pointing at an empty
//     directory and the same environment the sandbox sets (HOME, CI, ...),
//     measured once before and once after the service's runs so that any
//     warming of the registry's or the network's caches by the first run
//     favours neither side; the ratio uses their mean;
//   - raw warm: the second raw run's commands again in the same directory,
//     without and then with the package-lock.json its install wrote: the
//     floor a warm deployment of this lockfile-less project can reach, and
//     what a kept lockfile would add.
//
// It reports the sandbox overhead (service cold / raw cold, target ≤ 1.15)
// and the warm speed-up (service cold / service warm, target ≥ 3), and the
// per-step timings from each deployment's log. Run it with
//
//	go test ./cmd/libra-deploy -run '^$' -bench BenchmarkBuildViteReact -benchtime 1x
func BenchmarkBuildViteReact(b *testing.B) {
	if testing.Short() {
		b.Skip("installs from the npm registry")
	}
	app := viteReactApp("Bench Vite")
	install := []string{"npm", "install", "--no-audit", "--no-fund", "--legacy-peer-deps"}
	load0 := loadAverage()

	raw1 := rawBuild(b, app, install, false).cold

	s := startServer(b)
	tok := s.setup("bench", "react")
	cold := timedDeploy(b, s, tok, "cold", app)
	if !cold.hasLog("no cached node_modules for this lockfile: cold install") {
		b.Fatalf("the first deployment was not a cold install:\n%s", strings.Join(cold.logs, "\n"))
	}
	warm := timedDeploy(b, s, tok, "warm", app)
	if !warm.hasLog("node_modules restored from this org's build cache") {
		b.Fatalf("the second deployment did not restore node_modules:\n%s", strings.Join(warm.logs, "\n"))
	}

	raw2runs := rawBuild(b, app, install, true)
	raw2, rawWarm, rawWarmLocked := raw2runs.cold, raw2runs.warm, raw2runs.warmLocked
	rawCold := (raw1.total + raw2.total) / 2
	overhead := cold.total.Seconds() / rawCold.Seconds()
	speedup := cold.total.Seconds() / warm.total.Seconds()

	w := os.Stderr
	fmt.Fprintf(w, "\nBenchmarkBuildViteReact (create-vite react-ts, no lockfile; load average %s at start, %s at end)\n", load0, loadAverage())
	fmt.Fprintf(w, "  %-34s %9s %9s %9s\n", "", "total", "install", "build")
	row := func(name string, total, inst, bld time.Duration) {
		fmt.Fprintf(w, "  %-34s %9s %9s %9s\n", name, secs(total), secs(inst), secs(bld))
	}
	row("service cold (POST -> completed)", cold.total, cold.phase["install"], cold.phase["build"])
	row("service warm (same org, cached)", warm.total, warm.phase["install"], warm.phase["build"])
	row("raw cold, before the service", raw1.total, raw1.install, raw1.build)
	row("raw cold, after the service", raw2.total, raw2.install, raw2.build)
	row("raw warm, no package-lock.json", rawWarm.total, rawWarm.install, rawWarm.build)
	row("raw warm, npm's package-lock.json", rawWarmLocked.total, rawWarmLocked.install, rawWarmLocked.build)
	fmt.Fprintf(w, "  sandbox overhead  service cold / raw cold (mean %s) = %.2fx (target <= 1.15x)\n", secs(rawCold), overhead)
	fmt.Fprintf(w, "  warm speed-up     service cold / service warm        = %.2fx (target >= 3x)\n", speedup)
	for _, d := range []timedDeployment{cold, warm} {
		fmt.Fprintf(w, "  steps of the %s deployment:", d.name)
		for _, step := range []string{"validate", "sync", "sandbox", "build", "deploy", "cleanup"} {
			fmt.Fprintf(w, " %s %s", step, secs(d.step[step]))
		}
		fmt.Fprintf(w, "; queued %s\n", secs(d.queued))
	}

	b.ReportMetric(cold.total.Seconds(), "cold-s")
	b.ReportMetric(warm.total.Seconds(), "warm-s")
	b.ReportMetric(rawCold.Seconds(), "raw-cold-s")
	b.ReportMetric(cold.phase["install"].Seconds(), "cold-install-s")
	b.ReportMetric(warm.phase["install"].Seconds(), "warm-install-s")
	b.ReportMetric((raw1.install+raw2.install).Seconds()/2, "raw-install-s")
	b.ReportMetric(rawWarm.total.Seconds(), "raw-warm-s")
	b.ReportMetric(rawWarmLocked.total.Seconds(), "raw-warm-locked-s")
	b.ReportMetric(overhead, "overhead-x")
	b.ReportMetric(speedup, "warm-speedup-x")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// timedDeployment is one deployment, timed from POST to completed, with the
// durations its log reports.
type timedDeployment struct {
	name   string
	total  time.Duration
	queued time.Duration            // POST to the first log line
	step   map[string]time.Duration // "<step> completed in <d>"
	phase  map[string]time.Duration // "<install|build> finished in <d>"
	logs   []string
}

func (d timedDeployment) hasLog(sub string) bool {
	for _, l := range d.logs {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

var (
	stepDoneRe  = regexp.MustCompile(`^(validate|sync|sandbox|build|deploy|cleanup) completed in (\S+)$`)
	phaseDoneRe = regexp.MustCompile(`^(install|build) finished in (\S+)$`)
)

func timedDeploy(b *testing.B, s *server, tok, name string, app []map[string]any) timedDeployment {
	b.Helper()
	d := timedDeployment{name: name, step: map[string]time.Duration{}, phase: map[string]time.Duration{}}
	start := time.Now()
	r := s.deploy(tok, map[string]any{"projectId": "react", "orgId": "bench", "userId": "user-bench", "initFiles": app})
	if r.status != 202 {
		b.Fatalf("POST /deploy: %d %s", r.status, r.body)
	}
	id := r.str("deploymentId")
	// Followed as the CLI follows a deployment, by its event stream: a
	// status poll every few milliseconds cost the service (and this
	// process) enough CPU to slow the build it measured.
	ev, bad := openEvents(b, s.url, tok, id, "", "Accept", "application/x-ndjson")
	if bad != nil {
		b.Fatalf("GET events: %d %s", bad.status, bad.body)
	}
	ev.readUntil(b, 10*time.Minute, isDone)
	d.total = time.Since(start)
	ev.close()
	st := s.do("GET", statusPath(id), nil)
	if st.str("status") != "completed" {
		b.Fatalf("%s deployment failed: %s\n%s", d.name, st.str("error"), tail(string(st.body), 4000))
	}
	logs, _ := st.json["logEntries"].([]any)
	for i, l := range logs {
		m, _ := l.(map[string]any)
		msg, _ := m["message"].(string)
		d.logs = append(d.logs, msg)
		if i == 0 {
			if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["timestamp"])); err == nil {
				d.queued = max(0, ts.Sub(start))
			}
		}
		if sm := stepDoneRe.FindStringSubmatch(msg); sm != nil {
			d.step[sm[1]], _ = time.ParseDuration(sm[2])
		}
		if pm := phaseDoneRe.FindStringSubmatch(msg); pm != nil {
			d.phase[pm[1]], _ = time.ParseDuration(pm[2])
		}
	}
	return d
}

type rawTiming struct{ install, build, total time.Duration }

// rawRuns are the bare runs in one directory: cold, then, when asked, twice
// warm (node_modules and the npm cache in place): first without the
// package-lock.json the cold install wrote, as the service runs it (each
// deployment starts from the project's own files, which have no lockfile),
// then with it.
type rawRuns struct{ cold, warm, warmLocked rawTiming }

// rawBuild writes app into a fresh directory and runs the install and the
// build there, outside any sandbox, with an empty npm cache and the
// sandbox's environment.
func rawBuild(b *testing.B, app []map[string]any, install []string, again bool) rawRuns {
	b.Helper()
	return rawBuildWith(b, app, rawOptions{install: install, build: []string{"npm", "run", "build"}, lockfile: "package-lock.json"}, again)
}

// rawOptions are the commands of a raw build and what they need.
type rawOptions struct {
	install, build []string
	// env, when set, adds the package manager's cache settings for the
	// (empty) cache directory it is given.
	env func(cache string) map[string]string
	// lockfile is what the install writes in a project without one.
	lockfile string
}

// rawBuildWith is rawBuild with the commands, cache settings and lockfile
// name of any package manager.
func rawBuildWith(b *testing.B, app []map[string]any, o rawOptions, again bool) rawRuns {
	b.Helper()
	dir := b.TempDir()
	project := filepath.Join(dir, "project")
	writeApp(b, project, app)
	for _, d := range []string{"home", "cache", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"), // no ~/.npmrc: the sandbox has none either
		"TMPDIR=" + filepath.Join(dir, "tmp"),
		"LANG=C.UTF-8",
		"CI=1",
		"npm_config_cache=" + filepath.Join(dir, "cache"),
		"npm_config_update_notifier=false",
		"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
	}
	if o.env != nil {
		for k, v := range o.env(filepath.Join(dir, "cache")) {
			env = append(env, k+"="+v)
		}
	}
	run := func(args ...string) time.Duration {
		start := time.Now()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir, cmd.Env = project, env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 3000))
		}
		return time.Since(start)
	}
	once := func() rawTiming {
		var t rawTiming
		t.install = run(o.install...)
		t.build = run(o.build...)
		t.total = t.install + t.build
		if _, err := os.Stat(filepath.Join(project, "dist", "index.html")); err != nil {
			b.Fatalf("raw build wrote no dist/index.html: %v", err)
		}
		return t
	}
	var r rawRuns
	r.cold = once()
	if again {
		lock := filepath.Join(project, o.lockfile)
		saved, err := os.ReadFile(lock)
		if err != nil {
			b.Fatalf("the cold install wrote no %s: %v", o.lockfile, err)
		}
		if err := os.Remove(lock); err != nil {
			b.Fatal(err)
		}
		r.warm = once()
		if err := os.WriteFile(lock, saved, 0o644); err != nil {
			b.Fatal(err)
		}
		r.warmLocked = once()
	}
	return r
}

// writeApp writes initFiles-style files below dir.
func writeApp(b *testing.B, dir string, app []map[string]any) {
	b.Helper()
	for _, f := range app {
		p := filepath.Join(dir, filepath.FromSlash(f["path"].(string)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f["content"].(string)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
