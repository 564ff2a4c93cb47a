package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// deployTargetJSON is `deploy --json` with the URLs of an alias deployment.
type deployTargetJSON struct {
	DeploymentID  string `json:"deploymentId"`
	Status        string `json:"status"`
	URL           string `json:"url"`
	DeploymentURL string `json:"deploymentUrl"`
	AliasURL      string `json:"aliasUrl"`
}

func cliDeployTarget(t *testing.T, apiURL, tok, dir string, args ...string) deployTargetJSON {
	t.Helper()
	r := cli(t, apiURL, tok, append([]string{"deploy", dir, "--project", "web", "--json"}, args...)...)
	var out deployTargetJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil || out.Status != "completed" {
		t.Fatalf("deploy %v: exit %d, %q, %v\nstderr: %s", args, r.code, r.stdout, err, tail(r.stderr, 2000))
	}
	return out
}

// --prod moves production, --preview leaves it alone and prints the
// preview's own URL, promote moves production to the preview, and --alias
// prints the stable alias's URL, which serves the newest deployment with
// it. The deploy follows the event stream, never polling the status.
func TestCLIPreviewProdAliasPromote(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	rec, apiURL := startRecorder(t, s.url, nil)
	dir := t.TempDir()
	version := func(v string) { writeFolder(t, dir, map[string]string{"index.html": v}) }
	serves := func(what, siteURL, want string) {
		t.Helper()
		if got := string(s.pageAt(siteURL, "/").body); got != want {
			t.Fatalf("%s (%s) serves %q, want %q", what, siteURL, got, want)
		}
	}

	version("v1")
	prod := cliDeployTarget(t, apiURL, tok, dir, "--prod")
	serves("production after --prod", "http://web.localhost", "v1")
	serves("the prod deployment", prod.URL, "v1")
	if rec.count("GET /deploy-status") != 0 || rec.count("GET /deployments/"+prod.DeploymentID+"/events") == 0 {
		t.Fatalf("deploy did not follow the events alone: %v", rec.log)
	}

	version("v2")
	preview := cliDeployTarget(t, apiURL, tok, dir, "--preview")
	serves("the preview", preview.URL, "v2")
	serves("production after --preview", "http://web.localhost", "v1")
	if preview.URL == prod.URL || preview.AliasURL != "" {
		t.Fatalf("preview printed %+v after prod %+v", preview, prod)
	}

	if r := cli(t, apiURL, tok, "promote", preview.DeploymentID); r.code != 0 {
		t.Fatalf("promote: exit %d, %q", r.code, r.stderr)
	}
	serves("production after promote", "http://web.localhost", "v2")

	version("v3")
	alias := cliDeployTarget(t, apiURL, tok, dir, "--preview", "--alias", "staging")
	if !strings.HasPrefix(alias.URL, "http://staging--web.") || alias.URL != alias.AliasURL || alias.DeploymentURL == "" || alias.DeploymentURL == alias.URL {
		t.Fatalf("alias deploy printed %+v", alias)
	}
	serves("the alias", alias.URL, "v3")
	serves("the alias deployment", alias.DeploymentURL, "v3")
	serves("production after an alias preview", "http://web.localhost", "v2")

	version("v4")
	plain := cli(t, apiURL, tok, "deploy", dir, "--project", "web", "--preview", "--alias", "staging")
	if plain.code != 0 || strings.TrimSpace(plain.stdout) != alias.URL {
		t.Fatalf("deploy --alias printed %q (exit %d), want the alias URL %s", plain.stdout, plain.code, alias.URL)
	}
	serves("the alias after a newer deployment", alias.URL, "v4")
}

// A deploy following a running deployment shows its steps and log lines
// on stderr; `cancel` cancels it, the deploy then exits 3, and a `logs
// --follow` started meanwhile ends with it.
func TestCLICancelWhileFollowing(t *testing.T) {
	s := startServer(t, append([]string{"LIBRA_TEST_HOOKS=build@web:sleep:120s"}, noLimit...)...)
	tok := s.setup("acme", "web")
	dir := t.TempDir()
	writeFolder(t, dir, map[string]string{"index.html": "v1"})

	deploy := exec.Command(binary, "deploy", dir, "--project", "web")
	deploy.Env = append(os.Environ(), "LIBRA_URL="+s.url, "LIBRA_TOKEN="+tok)
	stderr, err := deploy.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := deploy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deploy.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	id := waitLine(t, lines, regexp.MustCompile(`deployment (\S+) queued`))
	waitLine(t, lines, regexp.MustCompile(`step build in_progress`))

	logs := exec.Command(binary, "logs", id, "--follow")
	logs.Env = deploy.Env
	var logsOut bytes.Buffer
	logs.Stdout = &logsOut
	if err := logs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logs.Process.Kill() })

	if r := cli(t, s.url, tok, "cancel", id, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"deploymentId":"`+id+`"`) {
		t.Fatalf("cancel: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	for range lines { // the rest of stderr, to the end
	}
	var exit *exec.ExitError
	if err := waitExit(t, deploy); !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("deploy of a cancelled deployment exited with %v, want code 3", err)
	}
	if err := waitExit(t, logs); err != nil {
		t.Fatalf("logs --follow: %v", err)
	}
	if out := logsOut.String(); !strings.Contains(out, "[validate]") || !strings.Contains(out, "[sync]") {
		t.Fatalf("logs --follow printed %q", out)
	}
}

// waitLine returns the first submatch of the first line matching re.
func waitLine(t *testing.T, lines <-chan string, re *regexp.Regexp) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stderr ended before a line matching %s", re)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m[len(m)-1]
			}
		case <-timeout:
			t.Fatalf("no line matching %s within 60 s", re)
		}
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("%v still running 60 s after the cancel", cmd.Args)
		return nil
	}
}
