package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkCLIRedeploy redeploys a 1,000-file static site with one file
// changed, with `libra-deploy deploy` (only the changed file is uploaded)
// and, for comparison, with one POST /deploy carrying every file in
// initFiles. It reports, per CLI redeploy, the bytes uploaded, the requests
// made before following the deployment, and the wall time from the
// command's start to the URL printed (the command exits right after):
//
//	go test -run '^$' -bench BenchmarkCLIRedeploy -benchtime 20x ./cmd/libra-deploy
func BenchmarkCLIRedeploy(b *testing.B) {
	s := startServer(b, noLimit...)
	tok := s.setup("acme", "site")
	dir := b.TempDir()
	files := map[string]string{"index.html": "<h1>v0</h1>"}
	for i := 1; i < 1000; i++ {
		files[fmt.Sprintf("assets/f%03d.css", i)] = fmt.Sprintf("body{--n:%d}", i)
	}
	writeFolder(b, dir, files)
	cliDeployJSON(b, s.url, tok, dir, "site", 0)

	var before []int
	rec, proxyURL := startRecorder(b, s.url, nil)
	var cliTimes, queuedTimes, bodyTimes []time.Duration
	steps := map[string][]time.Duration{}
	var bytesUp int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		writeFolder(b, dir, map[string]string{"index.html": fmt.Sprintf("<h1>v%d</h1>", i+1)})
		start := rec.total()
		out, queued := cliTimedDeploy(b, proxyURL, tok, dir, "site")
		cliTimes = append(cliTimes, out.elapsed)
		queuedTimes = append(queuedTimes, queued)
		before = append(before, rec.before(start))
		bytesUp += out.BytesUploaded
		for step, d := range stepTimes(b, s.do("GET", statusPath(out.DeploymentID), nil)) {
			steps[step] = append(steps[step], d)
		}
		if out.FilesUploaded != 1 {
			b.Fatalf("redeploy %d uploaded %d files, want 1", i, out.FilesUploaded)
		}
		bodyTimes = append(bodyTimes, redeployInitFiles(b, s, tok, files, i+1))
	}
	b.StopTimer()
	b.ReportMetric(float64(bytesUp)/float64(b.N), "bytes-uploaded/op")
	b.ReportMetric(float64(slices.Max(before)), "max-requests-before-events")
	b.ReportMetric(float64(percentile(cliTimes, 50).Milliseconds()), "cli-p50-ms")
	b.ReportMetric(float64(percentile(cliTimes, 90).Milliseconds()), "cli-p90-ms")
	b.ReportMetric(float64(percentile(queuedTimes, 50).Milliseconds()), "cli-queued-p50-ms")
	b.ReportMetric(float64(percentile(bodyTimes, 50).Milliseconds()), "initFiles-p50-ms")
	b.ReportMetric(float64(percentile(bodyTimes, 90).Milliseconds()), "initFiles-p90-ms")
	b.Logf("CLI redeploy of 1,000 files, one changed: %d B uploaded, %d requests before events, queued p50 %v, URL p50 %v p90 %v; initFiles: URL p50 %v p90 %v",
		bytesUp/int64(b.N), slices.Max(before), percentile(queuedTimes, 50), percentile(cliTimes, 50), percentile(cliTimes, 90),
		percentile(bodyTimes, 50), percentile(bodyTimes, 90))
	logStepTimes(b, steps)
	if slices.Max(before) > 4 {
		b.Errorf("%d requests before following the events; the target is at most 4", slices.Max(before))
	}
}

// cliTimedDeploy runs `deploy --json` and also times, from the command's
// start, the line on stderr saying the deployment is queued: the part the
// client does (walk, hash, ask, upload, queue), without the server's build.
func cliTimedDeploy(b *testing.B, apiURL, tok, dir, project string) (deployJSON, time.Duration) {
	cmd := exec.Command(binary, "deploy", dir, "--project", project, "--json")
	cmd.Env = append(os.Environ(), "LIBRA_URL="+apiURL, "LIBRA_TOKEN="+tok)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var queued time.Duration
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if queued == 0 && strings.HasSuffix(sc.Text(), " queued") {
			queued = time.Since(start)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("deploy: %v", err)
	}
	out := deployJSON{elapsed: time.Since(start)}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || queued == 0 {
		b.Fatalf("deploy printed %q (%v), queued after %v", stdout.String(), err, queued)
	}
	return out, queued
}

// redeployInitFiles sends the whole site in one POST /deploy, one file
// changed, and waits until it is live; it returns the time that took.
func redeployInitFiles(b *testing.B, s *server, tok string, files map[string]string, v int) time.Duration {
	list := make([]map[string]any, 0, len(files))
	for p, c := range files {
		if p == "index.html" {
			c = fmt.Sprintf("<h1>initFiles v%d</h1>", v)
		}
		list = append(list, map[string]any{"path": p, "content": c})
	}
	start := time.Now()
	r := s.deploy(tok, map[string]any{"projectId": "site", "orgId": "acme", "userId": "user-acme", "initFiles": list})
	if r.status != 202 {
		b.Fatalf("initFiles redeploy: %d %s", r.status, r.body)
	}
	if st := s.waitFinal(r.str("deploymentId"), time.Minute); st.str("status") != "completed" {
		b.Fatalf("initFiles redeploy: %s", st.body)
	}
	return time.Since(start)
}

// stepRe matches the line each step logs when it ends, and the run's
// closing line (start of validate to completion).
var stepRe = regexp.MustCompile(`^(?:(\w+) completed in |deployment (completed): .*, )([0-9.]+[µnm]?s)$`)

// stepTimes reads, from a deployment's log, how long each step took on
// the server, and the whole run as "run".
func stepTimes(b *testing.B, st response) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, msg := range logMessages(st) {
		m := stepRe.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		d, err := time.ParseDuration(m[3])
		if err != nil {
			b.Fatalf("step time in %q: %v", msg, err)
		}
		name := m[1]
		if m[2] != "" {
			name = "run"
		}
		out[name] = d
	}
	if len(out) == 0 {
		b.Fatalf("no step times in the deployment's log: %s", st.body)
	}
	return out
}

// logStepTimes prints every step's p50/p90 on one line: the benchmark
// output keeps only a few lines per run.
func logStepTimes(b *testing.B, steps map[string][]time.Duration) {
	var line strings.Builder
	for _, name := range []string{"validate", "sync", "sandbox", "build", "deploy", "cleanup", "run"} {
		if d := steps[name]; len(d) > 0 {
			fmt.Fprintf(&line, " %s %v/%v", name, percentile(d, 50), percentile(d, 90))
		}
	}
	b.Logf("server steps, p50/p90:%s", line.String())
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
