package e2b_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/fakee2b"
	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
	"github.com/libra-deploy/libra-deploy/sandbox/e2b"
)

const testKey = "e2b_test_key_0123456789"

func newProvider(fake *fakee2b.Running, key string, timeout time.Duration) *e2b.Provider {
	return e2b.New(e2b.Config{
		APIURL: fake.APIURL, SandboxURL: fake.SandboxURL, APIKey: key,
		Timeout: timeout, RequestTimeout: 2 * time.Second,
	})
}

func projectDir(t testing.TB) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "page.html"), []byte("<h1>page</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The sandbox's timeout is 4 s and the build takes longer: only the
// renewals keep the sandbox alive.
func TestE2BBuildLifecycle(t *testing.T) {
	fake := fakee2b.Start(t, testKey)
	p := newProvider(fake, testKey, 4*time.Second)
	ctx := context.Background()
	dir := projectDir(t)
	sb, err := p.Create(ctx, libra.SandboxOptions{DeploymentID: "dep1", OrgID: "org1", WorkDir: dir})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var out fakesandbox.TimedLines
	script := `echo first; sleep 5; echo second >&2; mkdir -p dist && cp src/page.html dist/index.html && echo "$GREETING" > dist/env.txt`
	code, err := sb.Run(ctx, libra.Command{Args: []string{"bash", "-c", script}, Env: map[string]string{"GREETING": "it's me"}, Timeout: 20 * time.Second, Output: out.Add})
	if err != nil || code != 0 {
		t.Fatalf("run: code %d err %v output %q", code, err, out.Lines)
	}
	first, second := out.Index("first"), out.Index("second")
	if first < 0 || second < 0 || out.At[second].Sub(out.At[first]) < 3*time.Second {
		t.Fatalf("output not streamed as it came: %q", out.Lines)
	}
	files := map[string]string{}
	err = sb.ReadFiles(ctx, "dist", func(p string, _ int64, r io.Reader) error {
		b, err := io.ReadAll(r)
		files[p] = string(b)
		return err
	})
	if err != nil || files["index.html"] != "<h1>page</h1>" || files["env.txt"] != "it's me\n" {
		t.Fatalf("output files %q err %v", files, err)
	}
	if code, err := sb.Run(ctx, libra.Command{Args: []string{"sh", "-c", "exit 7"}}); err != nil || code != 7 {
		t.Fatalf("failing build: code %d err %v", code, err)
	}
	if err := sb.Destroy(ctx); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	st := fake.Stats()
	if st.Created != 1 || st.Killed != 1 || st.Expired != 0 || st.Live != 0 || st.Extended == 0 {
		t.Fatalf("stats %+v: want one sandbox, renewed, killed, never expired", st)
	}
	if fake.Spec != nil && fake.Spec.Checked() < 5 {
		t.Fatalf("the spec checker saw %d exchanges", fake.Spec.Checked())
	}
}

func TestE2BFaultsAreClassified(t *testing.T) {
	cases := []struct {
		name      string
		key       string
		fault     func(*http.Request) int
		delay     time.Duration
		permanent bool
		message   string
	}{
		{name: "bad key", key: "wrong", permanent: true, message: "E2B_API_KEY"},
		{name: "outage on create", key: testKey, fault: on("POST", "/sandboxes", 503), message: "503"},
		{name: "rate limited", key: testKey, fault: on("POST", "/sandboxes", 429), message: "429"},
		{name: "envd outage on upload", key: testKey, fault: on("POST", "/envd/files", 502), message: "502"},
		{name: "provider timeout", key: testKey, delay: 3 * time.Second, message: "unreachable"},
		{name: "refused request", key: testKey, fault: on("POST", "/sandboxes", 400), permanent: true, message: "e2b refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := fakee2b.Start(t, testKey)
			fake.Fault, fake.Delay = tc.fault, tc.delay
			p := newProvider(fake, tc.key, time.Minute)
			_, err := p.Create(context.Background(), libra.SandboxOptions{DeploymentID: "d", OrgID: "o", WorkDir: projectDir(t)})
			fakesandbox.CheckFault(t, err, "e2b", testKey, tc.permanent, tc.message)
			fake.Fault, fake.Delay = nil, 0
			if st := fake.Stats(); st.Live != 0 {
				t.Fatalf("%d sandboxes left behind", st.Live)
			}
		})
	}
}

func on(method, path string, code int) func(*http.Request) int {
	return func(r *http.Request) int {
		if r.Method == method && r.URL.Path == path {
			return code
		}
		return 0
	}
}

func TestE2BCommandTimeoutIsTheBuilds(t *testing.T) {
	fakesandbox.CheckCommandTimeout(t, newProvider(fakee2b.Start(t, testKey), testKey, time.Minute), projectDir(t))
}
