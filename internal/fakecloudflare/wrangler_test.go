package fakecloudflare

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wranglerVersion is the wrangler the fake is shown to serve: the newest
// line that runs on this machine's Node 20.
const wranglerVersion = "4.80.0"

// TestRealWranglerDeploysToTheFake runs Cloudflare's own client against
// the fake, so the fake is shown to accept real client traffic and not
// only ours. It needs npm and the npm registry.
func TestRealWranglerDeploysToTheFake(t *testing.T) {
	if testing.Short() {
		t.Skip("installs wrangler from npm")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("no npm on this machine")
	}
	fake := New(account, token)
	var h http.Handler = fake
	spec, err := LoadSpec(FindSpec())
	if err == nil {
		h = spec.Wrap(fake)
	} else {
		t.Logf("SKIPPING the spec check of wrangler's traffic: %v", err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	write(t, dir, "wrangler.toml", "name = \"wrangler-site\"\ncompatibility_date = \"2025-06-01\"\n[assets]\ndirectory = \"./public\"\n")
	write(t, dir, "public/index.html", "hello\n")
	write(t, dir, "public/css/site.css", "body{color:red}")
	npm(t, dir, 3*time.Minute, "install", "--no-audit", "--no-fund", "--no-save", "wrangler@"+wranglerVersion)
	out := npx(t, dir, srv.URL)
	if unrouted := fake.Unrouted(); len(unrouted) > 0 {
		t.Logf("requests the fake has no endpoint for: %v", unrouted)
	}
	sc := fake.Script("wrangler-site")
	if sc == nil {
		t.Fatalf("wrangler uploaded no Worker:\n%s", out)
	}
	if sc.Assets["/index.html"] != "051240d22ab9086ec5997a6d1ad35ec1" || len(sc.Assets) != 2 {
		t.Fatalf("Worker assets = %v (index.html must carry the published hash)", sc.Assets)
	}
	if got, _ := fake.Asset(sc.Assets["/css/site.css"]); string(got) != "body{color:red}" {
		t.Fatalf("stored site.css = %q", got)
	}
	if !strings.Contains(out, "wrangler-site.libra-test.workers.dev") {
		t.Fatalf("wrangler did not report the workers.dev URL:\n%s", out)
	}
	if spec != nil {
		checked, violations, unspecified := spec.Report()
		t.Logf("spec check of wrangler's traffic: %d exchanges checked; outside the spec subset: %v", checked, unspecified)
		for _, v := range violations {
			t.Errorf("spec violation: %s", v)
		}
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func npm(t *testing.T, dir string, timeout time.Duration, args ...string) {
	t.Helper()
	cmd := exec.Command("npm", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	cmd.WaitDelay = timeout
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm %v: %v\n%s", args, err, out)
	}
}

// npx runs `wrangler deploy` pointed at the fake.
func npx(t *testing.T, dir, apiBase string) string {
	t.Helper()
	cmd := exec.Command("npx", "--no-install", "wrangler", "deploy")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CLOUDFLARE_API_BASE_URL="+apiBase, "CLOUDFLARE_API_TOKEN="+token,
		"CLOUDFLARE_ACCOUNT_ID="+account, "WRANGLER_SEND_METRICS=false", "CI=true", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wrangler deploy: %v\n%s", err, out)
	}
	t.Logf("wrangler deploy:\n%s", out)
	return string(out)
}
