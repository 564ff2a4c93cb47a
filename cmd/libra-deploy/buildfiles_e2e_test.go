package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Files a build wrote are read by the service as root, after the build's
// code ran: the install's lockfile (kept with the cached node_modules), the
// output directory, the build cache's tree. These tests leave hostile things
// under those names and check that the deployment still ends, in time, with
// nothing leaked and the worker free for the next one.

// hostileFilesBuild writes dist/ with a FIFO, a link to /etc/shadow, a link
// to the host's /etc and a device-less page, next to a real index.html.
const hostileFilesBuild = `const fs = require("fs"), cp = require("child_process");
fs.mkdirSync("dist", {recursive: true});
fs.writeFileSync("dist/index.html", "<p>survived</p>");
cp.execFileSync("mkfifo", ["dist/pipe.html"]);
fs.symlinkSync("/etc/shadow", "dist/shadow.txt");
fs.symlinkSync("/etc", "dist/etc");
console.log("hostile output written");
`

type hostileFileCase struct {
	name string
	// preinstall replaces package-lock.json after npm wrote it: npm runs
	// the root project's preinstall after saving the lockfile.
	preinstall string
	wantWarn   string
}

func hostileFileCases() []hostileFileCase {
	return []hostileFileCase{
		{"lockfile is a FIFO", "rm -f package-lock.json && mkfifo package-lock.json", "package-lock.json is not cached"},
		{"lockfile links to /etc/shadow", "rm -f package-lock.json && ln -s /etc/shadow package-lock.json", "package-lock.json is not cached"},
		{"lockfile links to a huge sparse file", "truncate -s 1G huge.bin && rm -f package-lock.json && ln -s huge.bin package-lock.json", "package-lock.json is not cached"},
		{"node_modules links to /etc", "rm -rf node_modules && ln -s /etc node_modules", ""},
	}
}

func TestBuildWrittenFilesAreReadSafely(t *testing.T) {
	s := startServer(t, "MAX_DEPLOYMENT_TIMEOUT=20000", "MAX_CONCURRENT_DEPLOYMENTS=1")
	tok := s.setup("acme", "hostilefiles")
	health := watchHealth(t, s)
	shadow, _ := os.ReadFile("/etc/shadow")
	for _, c := range hostileFileCases() {
		t.Run(c.name, func(t *testing.T) {
			// The server's helpers fail the test they were given: this one.
			s := s.forTest(t)
			r := deployFiles(s, tok, "acme", "hostilefiles", nodeProject(
				map[string]string{"preinstall": c.preinstall, "build": "node build.js"}, "build.js", hostileFilesBuild))
			id := r.str("deploymentId")
			start := time.Now()
			// Past the 20 s deadline, a deployment must have failed at the
			// latest; 40 s leaves room for a loaded machine.
			st := s.waitFinal(id, 40*time.Second)
			took := time.Since(start)
			t.Logf("%s: %s after %s", c.name, st.str("status"), took.Round(time.Millisecond))
			if took > 20*time.Second {
				t.Errorf("final after %s, past the 20s deadline", took)
			}
			if st.str("status") != "completed" {
				t.Fatalf("want completed: %s", st.body)
			}
			if c.wantWarn != "" && !strings.Contains(string(st.body), c.wantWarn) {
				t.Errorf("no warning %q in the log: %.3000s", c.wantWarn, st.body)
			}
			paths := publishedPaths(t, s, id)
			if strings.Join(paths, ",") != "index.html" {
				t.Errorf("published %v, want only index.html", paths)
			}
			checkCacheHoldsNoHostFile(t, s, shadow)
			full := s.do("GET", "/deploy-log?id="+id, nil, "Authorization", "Bearer "+tok)
			if full.status != 200 {
				t.Fatalf("deploy-log: %d %.300s", full.status, full.body)
			}
			for what, body := range map[string][]byte{"status": st.body, "deploy-log": full.body} {
				if len(shadow) > 0 && strings.Contains(string(body), string(shadow)) {
					t.Errorf("the %s holds the host's /etc/shadow", what)
				}
			}
			peak := peakRSSMB(t, s)
			t.Logf("server peak RSS so far: %d MB", peak)
			if peak > 400 {
				t.Errorf("server peak RSS %d MB: something read a build's file whole", peak)
			}
			// The worker is free: a static site deploys right after.
			next := deployFiles(s, tok, "acme", "hostilefiles", files("index.html", "<p>next</p>"))
			if st := s.waitFinal(next.str("deploymentId"), 30*time.Second); st.str("status") != "completed" {
				t.Fatalf("next deployment: %s", st.body)
			}
		})
	}
	if n := health.stop(); n != 0 {
		t.Errorf("%d health checks failed during the hostile builds", n)
	}
	checkNoBuildProcesses(t, s)
}

// peakRSSMB is the server process's peak resident memory (VmHWM), in MB.
func peakRSSMB(t *testing.T, s *server) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb >> 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
}

// forTest is s reporting its failures to t (a subtest).
func (s *server) forTest(t *testing.T) *server {
	c := *s
	c.t = t
	return &c
}

// checkCacheHoldsNoHostFile walks the build cache (as root) and fails on
// any file holding the host's /etc/shadow, or any entry that is not a
// regular file, directory or symbolic link.
func checkCacheHoldsNoHostFile(t *testing.T, s *server, shadow []byte) {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(s.sandboxRoot, "cache"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		n++
		switch {
		case d.Type()&os.ModeNamedPipe != 0, d.Type()&os.ModeDevice != 0:
			t.Errorf("the build cache holds a special file: %s", p)
		case d.Type().IsRegular() && len(shadow) > 0:
			b, _ := os.ReadFile(p)
			if len(b) > 0 && strings.Contains(string(b), string(shadow)) {
				t.Errorf("the build cache holds the host's /etc/shadow: %s", p)
			}
		}
		return nil
	})
	if n < 2 {
		t.Errorf("the build cache at %s is empty or missing: nothing was checked", filepath.Join(s.sandboxRoot, "cache"))
	}
	t.Logf("build cache: %d entries checked", n)
}

// TestShutdownDuringHostileBuildIsPrompt: SIGTERM while a build whose
// install left a FIFO lockfile is running: the service stops within its
// grace period instead of hanging on the FIFO.
func TestShutdownDuringHostileBuildIsPrompt(t *testing.T) {
	s := startServer(t, "SHUTDOWN_GRACE_MS=2000", "MAX_DEPLOYMENT_TIMEOUT=120000")
	tok := s.setup("acme", "fifostop")
	r := deployFiles(s, tok, "acme", "fifostop", nodeProject(map[string]string{
		"preinstall": "rm -f package-lock.json && mkfifo package-lock.json",
		"build":      `node -e "setTimeout(() => {}, 60000)"`,
	}))
	id := r.str("deploymentId")
	s.waitFor(id, 90*time.Second, func(r response) bool {
		return r.str("currentStep") == "build" && strings.Contains(string(r.body), "preinstall")
	})
	// Let the install finish and the service reach the lockfile.
	time.Sleep(3 * time.Second)
	start := time.Now()
	err := s.stop(30 * time.Second)
	took := time.Since(start)
	t.Logf("SIGTERM to exit: %s (grace 2s), exit: %v", took.Round(time.Millisecond), err)
	if took > 12*time.Second {
		t.Fatalf("the service took %s to stop, past its 2s grace period", took)
	}
}

// logFloodJS prints about 300 MB in 1 KB lines, with a first and a last line
// the stored log must keep, then writes a page to publish.
const logFloodJS = `const fs = require("fs");
const line = "x".repeat(1000) + "\n";
const total = 300 * 1000;
let i = 0;
console.log("FIRST LINE OF THE FLOOD");
function write() {
  while (i < total) {
    i++;
    if (!process.stdout.write(line)) { process.stdout.once("drain", write); return; }
  }
  process.stdout.write("LAST LINE OF THE FLOOD\n", () => {
    fs.mkdirSync("dist", {recursive: true});
    fs.writeFileSync("dist/index.html", "<p>flooded</p>");
  });
}
write();
`

// TestBuildLogIsCapped: a build printing ~300 MB must leave a full log of
// at most BUILD_LOG_LIMIT_MB, on disk while it runs and in the artifact
// store, keeping its first and last lines.
func TestBuildLogIsCapped(t *testing.T) {
	const limitMB = 2
	const slack = 64 << 10
	s := startServer(t, "SANDBOX_DISK_MB=64", "OUTPUT_LIMIT_MB=16", fmt.Sprintf("BUILD_LOG_LIMIT_MB=%d", limitMB), "MAX_DEPLOYMENT_TIMEOUT=300000")
	tok := s.setup("acme", "flood")
	artifactsBefore := dirBytes(filepath.Join(s.dataDir, "artifacts"))
	r := deployFiles(s, tok, "acme", "flood", nodeProject(map[string]string{"build": "node flood.js"}, "flood.js", logFloodJS))
	id := r.str("deploymentId")
	var maxLog int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if fi, err := os.Stat(filepath.Join(s.sandboxRoot, "work", id+".log")); err == nil {
				maxLog = max(maxLog, fi.Size())
			}
		}
	}()
	start := time.Now()
	st := s.waitFinal(id, 4*time.Minute)
	close(stop)
	<-done
	if st.str("status") != "completed" {
		t.Fatalf("want completed: %.3000s", st.body)
	}
	full := s.do("GET", "/deploy-log?id="+id, nil, "Authorization", "Bearer "+tok)
	grown := dirBytes(filepath.Join(s.dataDir, "artifacts")) - artifactsBefore
	t.Logf("build of ~300 MB output: %s; work-dir log peak %d bytes, stored log %d bytes, artifact store grew %d bytes (cap %d MiB)",
		time.Since(start).Round(time.Millisecond), maxLog, len(full.body), grown, limitMB)
	if full.status != 200 {
		t.Fatalf("deploy-log: %d %.500s", full.status, full.body)
	}
	if n := int64(len(full.body)); n > limitMB<<20+slack || n < limitMB<<20-slack {
		t.Errorf("stored log is %d bytes, want about the %d MiB cap", n, limitMB)
	}
	peak := peakRSSMB(t, s)
	t.Logf("server peak RSS: %d MB", peak)
	if peak > 400 {
		t.Errorf("server peak RSS %d MB while a build printed 300 MB", peak)
	}
	if maxLog == 0 {
		t.Errorf("the work-dir log was never seen at %s: the check above measured nothing", filepath.Join(s.sandboxRoot, "work"))
	}
	if maxLog > limitMB<<20+slack {
		t.Errorf("the work-dir log reached %d bytes while the build ran, past the %d MiB cap", maxLog, limitMB)
	}
	if grown > 3*(limitMB<<20) {
		t.Errorf("the artifact store grew by %d bytes for a %d MiB log and a one-line page", grown, limitMB)
	}
	body := string(full.body)
	for _, want := range []string{"$ npm install", "FIRST LINE OF THE FLOOD", "MB of output dropped", "LAST LINE OF THE FLOOD"} {
		if !strings.Contains(body, want) {
			t.Errorf("stored log lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`\[\.\.\. ([0-9.]+) MB of output dropped`).FindStringSubmatch(body); m != nil {
		t.Logf("marker: %s", m[0])
	}
}

// dirBytes is the apparent size of the files below dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
