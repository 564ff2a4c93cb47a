package daytona_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/fakedaytona"
	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
	"github.com/libra-deploy/libra-deploy/sandbox/daytona"
)

const testKey = "dtn_test_key_0123456789"

func newProvider(fake *fakedaytona.Running, key string) *daytona.Provider {
	return daytona.New(daytona.Config{
		APIURL: fake.APIURL, APIKey: key, PollInterval: 20 * time.Millisecond,
		RequestTimeout: 2 * time.Second, CreateTimeout: 5 * time.Second,
	})
}

func projectDir(t testing.TB) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"p"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "page.html"), []byte("<h1>page</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDaytonaBuildLifecycle(t *testing.T) {
	fake := fakedaytona.Start(t, testKey)
	fake.StartAfterPolls = 2
	p := newProvider(fake, testKey)
	ctx := context.Background()
	dir := projectDir(t)
	sb, err := p.Create(ctx, libra.SandboxOptions{DeploymentID: "dep1", OrgID: "org1", WorkDir: dir})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var out fakesandbox.TimedLines
	script := `cat package.json; echo; echo first; sleep 1.5; echo second >&2; mkdir -p dist && cp src/page.html dist/index.html && echo "$GREETING" > dist/env.txt`
	code, err := sb.Run(ctx, libra.Command{Args: []string{"bash", "-c", script}, Env: map[string]string{"GREETING": "it's me"}, Timeout: 20 * time.Second, Output: out.Add})
	if err != nil || code != 0 {
		t.Fatalf("run: code %d err %v; output %q", code, err, out.Lines)
	}
	checkStreamed(t, &out)
	files := readAll(t, sb, "dist")
	if files["index.html"] != "<h1>page</h1>" || files["env.txt"] != "it's me\n" {
		t.Fatalf("output files: %q", files)
	}
	// The build's output is on this host too, where the steps look for it.
	if b, err := os.ReadFile(filepath.Join(dir, "dist", "index.html")); err != nil || string(b) != "<h1>page</h1>" {
		t.Fatalf("synced output: %q %v", b, err)
	}
	code, err = sb.Run(ctx, libra.Command{Args: []string{"sh", "-c", "echo broken; exit 3"}, Timeout: 10 * time.Second})
	if err != nil || code != 3 {
		t.Fatalf("failing build: code %d err %v, want 3 and nil", code, err)
	}
	if err := sb.Destroy(ctx); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if err := sb.Destroy(ctx); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if created, deleted := fake.Counts(); created != 1 || deleted != 1 || fake.Live() != 0 || len(fake.TempDirs()) != 0 {
		t.Fatalf("created %d deleted %d live %d dirs %v", created, deleted, fake.Live(), fake.TempDirs())
	}
	if fake.Spec != nil && fake.Spec.Checked() == 0 {
		t.Fatal("the spec checker saw no traffic")
	}
}

// checkStreamed asserts that output came while the command ran: the line
// before the sleep arrived well before the one after it.
func checkStreamed(t *testing.T, out *fakesandbox.TimedLines) {
	t.Helper()
	first, second := -1, -1
	for i, l := range out.Lines {
		switch l {
		case "first":
			first = i
		case "second":
			second = i
		}
	}
	if first < 0 || second < 0 || !strings.Contains(strings.Join(out.Lines, "\n"), `{"name":"p"}`) {
		t.Fatalf("output lines: %q", out.Lines)
	}
	if gap := out.At[second].Sub(out.At[first]); gap < 500*time.Millisecond {
		t.Fatalf("output was not streamed: %q and %q arrived %s apart", out.Lines[first], out.Lines[second], gap)
	}
}

func readAll(t *testing.T, sb libra.Sandbox, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := sb.ReadFiles(context.Background(), dir, func(p string, size int64, r io.Reader) error {
		b, err := io.ReadAll(r)
		files[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("read files: %v", err)
	}
	return files
}

func TestDaytonaFaultsAreClassified(t *testing.T) {
	cases := []struct {
		name      string
		key       string
		fault     func(*http.Request) int
		delay     time.Duration
		permanent bool
		message   string
	}{
		{name: "bad key", key: "wrong", permanent: true, message: "DAYTONA_API_KEY"},
		{name: "outage on create", key: testKey, fault: on("POST", "/api/sandbox", 503), message: "503"},
		{name: "rate limited", key: testKey, fault: on("POST", "/api/sandbox", 429), message: "429"},
		{name: "outage on upload", key: testKey, fault: on("POST", "/files/bulk-upload", 502), message: "502"},
		{name: "provider timeout", key: testKey, delay: 3 * time.Second, message: "unreachable"},
		{name: "refused request", key: testKey, fault: on("POST", "/api/sandbox", 400), permanent: true, message: "daytona refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := fakedaytona.Start(t, testKey)
			fake.Fault, fake.Delay = tc.fault, tc.delay
			p := newProvider(fake, tc.key)
			_, err := p.Create(context.Background(), libra.SandboxOptions{DeploymentID: "d", OrgID: "o", WorkDir: projectDir(t)})
			fakesandbox.CheckFault(t, err, "daytona", testKey, tc.permanent, tc.message)
			if fake.Live() != 0 {
				t.Fatalf("%d sandboxes left behind", fake.Live())
			}
		})
	}
}

func on(method, suffix string, code int) func(*http.Request) int {
	return func(r *http.Request) int {
		if r.Method == method && strings.HasSuffix(r.URL.Path, suffix) {
			return code
		}
		return 0
	}
}

func TestDaytonaCommandTimeoutIsTheBuilds(t *testing.T) {
	fakesandbox.CheckCommandTimeout(t, newProvider(fakedaytona.Start(t, testKey), testKey), projectDir(t))
}

func TestDaytonaCheckNamesTheProblem(t *testing.T) {
	cases := []struct {
		cfg  daytona.Config
		want string
	}{
		{daytona.Config{}, "DAYTONA_API_KEY is not set"},
		{daytona.Config{APIKey: "k", APIURL: "ftp://x"}, "DAYTONA_API_URL"},
		{daytona.Config{APIKey: "k"}, ""},
	}
	for _, tc := range cases {
		err := daytona.New(tc.cfg).Check(context.Background())
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
