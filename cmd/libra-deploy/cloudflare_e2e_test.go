package main_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/deploytarget/cloudflare"
	"github.com/libra-deploy/libra-deploy/internal/fakecloudflare"
)

const (
	cfAccount = "0123456789abcdef0123456789abcdef"
	cfToken   = "cf-e2e-token-never-in-a-log"
)

// cloudflareFake serves a fake Cloudflare account (spec-checked when the
// spec is there) and returns the server env that points the service at it
// with token.
func cloudflareFake(t *testing.T, token string) (*fakecloudflare.Fake, []string) {
	t.Helper()
	fake := fakecloudflare.New(cfAccount, cfToken)
	srv := httptest.NewServer(specChecked(t, fake))
	t.Cleanup(srv.Close)
	return fake, append(append([]string(nil), noLimit...), "DEPLOY_TARGET=cloudflare", "CLOUDFLARE_API_BASE_URL="+srv.URL,
		"CLOUDFLARE_ACCOUNT_ID="+cfAccount, "CLOUDFLARE_API_TOKEN="+token)
}

// specChecked wraps h in the Cloudflare spec check; every violation fails
// the test at its end.
func specChecked(t *testing.T, h http.Handler) http.Handler {
	spec, err := fakecloudflare.LoadSpec(fakecloudflare.FindSpec())
	switch {
	case errors.Is(err, os.ErrNotExist):
		t.Logf("SKIPPING the spec check of Cloudflare traffic: %v", err)
		return h
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		checked, violations, unspecified := spec.Report()
		t.Logf("Cloudflare spec check: %d exchanges checked; outside the spec subset: %v", checked, unspecified)
		for _, v := range violations {
			t.Errorf("spec violation: %s", v)
		}
	})
	return spec.Wrap(h)
}

// noSecret fails when the API token shows in a response or the server log.
func noSecret(t *testing.T, s *server, bodies ...[]byte) {
	t.Helper()
	for _, b := range append(bodies, []byte(s.logs.String())) {
		if strings.Contains(string(b), cfToken) {
			t.Fatal("the Cloudflare API token appears in a response or the server log")
		}
	}
}

func TestCloudflareStaticSiteRedeployAndRollback(t *testing.T) {
	fake, env := cloudflareFake(t, cfToken)
	s := startServer(t, env...)
	tok := s.setup("acme", "Shop")
	files := map[string]string{
		"index.html": "<h1>v1</h1>", "about/index.html": "<p>about</p>", "app.js": "console.log(1)", "style.css": "body{}",
		"_headers": "/*\n  X-Frame-Options: DENY\n", "_redirects": "/old /about 301\n",
		"wrangler.json": `{"assets": {"directory": ".", "not_found_handling": "404-page", "html_handling": "drop-trailing-slash"}}`,
	}
	first := s.deployWait(tok, site("acme", "Shop", files), "completed")
	st := s.waitFinal(first, time.Second)
	if got := st.str("url"); got != "https://libra-shop.libra-test.workers.dev/" {
		t.Fatalf("url = %q, want the Worker's workers.dev URL", got)
	}
	sc := fake.Script("libra-shop")
	if sc == nil {
		t.Fatal("no Worker uploaded")
	}
	// wrangler.json is published as an asset too: it is in the output dir.
	if n := len(fake.Uploaded()); n != 5 || len(sc.Assets) != 5 {
		t.Fatalf("uploaded %d assets, Worker has %d, want 5 each: %v", n, len(sc.Assets), sc.Assets)
	}
	cfg := sc.Metadata["assets"].(map[string]any)["config"].(map[string]any)
	if cfg["_headers"] != files["_headers"] || cfg["_redirects"] != files["_redirects"] ||
		cfg["not_found_handling"] != "404-page" || cfg["html_handling"] != "drop-trailing-slash" {
		t.Fatalf("assets config = %v", cfg)
	}
	if _, ok := sc.Metadata["main_module"]; ok || len(sc.Modules) != 0 {
		t.Fatalf("an assets-only Worker got modules: %v", sc.Metadata)
	}

	// A redeploy with one changed file uploads that file alone.
	files["app.js"] = "console.log(2)"
	second := s.deployWait(tok, site("acme", "Shop", files), "completed")
	if n := len(fake.Uploaded()); n != 6 {
		t.Fatalf("after a redeploy with one changed file, %d assets were uploaded in all, want 5 + 1", n)
	}
	if got := fake.Script("libra-shop").Assets["/app.js"]; got != cloudflare.AssetHash([]byte("console.log(2)"), "app.js") {
		t.Fatalf("the Worker serves app.js %s after the redeploy", got)
	}

	// Rolling back publishes the first deployment's manifest again:
	// nothing rebuilt, no asset uploaded, the Worker serves v1's files.
	r := s.do("POST", "/projects/Shop/rollback", map[string]any{"deploymentId": first}, bearer(tok)...)
	wantCode(t, r, 200, "")
	after := fake.Script("libra-shop")
	if n := len(fake.Uploaded()); n != 6 {
		t.Fatalf("the rollback uploaded %d assets", n-6)
	}
	if after.Uploads != 3 || after.Assets["/app.js"] != sc.Assets["/app.js"] {
		t.Fatalf("after the rollback the Worker (upload %d) serves app.js %s, want v1's %s", after.Uploads, after.Assets["/app.js"], sc.Assets["/app.js"])
	}
	noSecret(t, s, s.waitFinal(second, time.Second).body, r.body)
}

func TestCloudflareOutageRetriedByTheQueue(t *testing.T) {
	fake, env := cloudflareFake(t, cfToken)
	// More 503s than one attempt's own retries: the attempt fails and the
	// queue runs the deployment again, which then goes through.
	fake.Fail("/assets-upload-session", 503, 5)
	s := startServer(t, append(env, "RETRY_BACKOFF_MS=100")...)
	tok := s.setup("acme", "site")
	id := s.deployWait(tok, site("acme", "site", map[string]string{"index.html": "<h1>hi</h1>"}), "completed")
	st := s.waitFinal(id, time.Second)
	logs := strings.Join(logMessages(st), "\n")
	if !strings.Contains(logs, "attempt 1 of 3 failed: Cloudflare failed to open an assets upload session: HTTP 503") {
		t.Fatalf("no retried attempt in the log:\n%s", logs)
	}
	if fake.Script("libra-site") == nil || len(fake.Uploaded()) != 1 {
		t.Fatalf("after the outage: script %v, %d uploads", fake.Script("libra-site"), len(fake.Uploaded()))
	}
	noSecret(t, s, st.body)
}

func TestCloudflareBadTokenFailsClearly(t *testing.T) {
	fake, env := cloudflareFake(t, "not-the-token")
	s := startServer(t, env...)
	tok := s.setup("acme", "site")
	id := s.deployWait(tok, site("acme", "site", map[string]string{"index.html": "x"}), "failed")
	st := s.waitFinal(id, time.Second)
	msg := st.str("error")
	if !strings.Contains(msg, "Cloudflare refused the service's credentials") || !strings.Contains(msg, "CLOUDFLARE_API_TOKEN") {
		t.Fatalf("error = %q, want one naming Cloudflare and the token variable", msg)
	}
	if strings.Contains(string(st.body), "not-the-token") || strings.Contains(s.logs.String(), "not-the-token") {
		t.Fatal("the (wrong) API token appears in the status or the server log")
	}
	if fake.Calls("POST /accounts/{account}/workers/scripts/{script}/assets-upload-session") != 1 {
		t.Fatalf("a refused token was tried %d times, want once", fake.Calls("POST /accounts/{account}/workers/scripts/{script}/assets-upload-session"))
	}
}

// honoProject is Libra's template in small: a Hono app in src/worker.ts
// beside a single-page app built into dist/, with wrangler pinned (the
// newest line that runs on Node 20).
func honoProject() map[string]string {
	return map[string]string{
		"package.json": `{"name": "libra-app", "private": true, "type": "module",
  "scripts": {"build": "node build.mjs"},
  "dependencies": {"hono": "4.13.19"},
  "devDependencies": {"wrangler": "4.80.0"}}`,
		"build.mjs": `import { mkdirSync, writeFileSync } from "node:fs";
mkdirSync("dist/assets", { recursive: true });
writeFileSync("dist/index.html", '<!doctype html><div id="app"></div><script src="/assets/app.js"></script>');
writeFileSync("dist/assets/app.js", 'document.getElementById("app").textContent = "spa";');
// What the build could see of its environment, published for the test
// to check that no platform key reached it.
writeFileSync("dist/build-env.json", JSON.stringify(process.env));
`,
		"src/worker.ts": `import { Hono } from "hono";
const app = new Hono<{ Bindings: { ASSETS: Fetcher } }>();
app.get("/api/hello", (c) => c.json({ hello: "from the edge" }));
export default app;
`,
		"wrangler.toml": `name = "libra-app"
main = "src/worker.ts"
compatibility_date = "2025-06-01"
compatibility_flags = ["nodejs_compat"]

[assets]
directory = "./dist"
binding = "ASSETS"
not_found_handling = "single-page-application"
`,
	}
}

// TestCloudflareHonoWorker builds Libra's kind of project for real (npm
// install of hono and wrangler in the sandbox, the build, then wrangler's
// bundle) and checks the Worker Cloudflare receives.
func TestCloudflareHonoWorker(t *testing.T) {
	fake, env := cloudflareFake(t, cfToken)
	s := startServer(t, env...)
	tok := s.setup("acme", "app")
	r := s.deploy(tok, site("acme", "app", honoProject()))
	if r.status != 202 {
		t.Fatalf("POST /deploy: %d %s", r.status, r.body)
	}
	st := s.waitFinal(r.str("deploymentId"), 8*time.Minute)
	logs := strings.Join(logMessages(st), "\n")
	if st.str("status") != "completed" {
		t.Fatalf("deployment %s: %s\n%s", st.str("status"), st.str("error"), tail(logs, 4000))
	}
	sc := fake.Script("libra-app")
	if sc == nil {
		t.Fatal("no Worker uploaded")
	}
	meta := sc.Metadata
	if meta["main_module"] != "worker.js" || meta["compatibility_date"] != "2025-06-01" {
		t.Fatalf("Worker metadata = %v", meta)
	}
	if flags, _ := meta["compatibility_flags"].([]any); len(flags) != 1 || flags[0] != "nodejs_compat" {
		t.Fatalf("compatibility_flags = %v", meta["compatibility_flags"])
	}
	module := string(sc.Modules["worker.js"])
	// The bundle holds the app's route and Hono itself (its router),
	// compiled from TypeScript: no type annotation is left.
	if !strings.Contains(module, "/api/hello") || !strings.Contains(module, "RegExpRouter") || strings.Contains(module, "Bindings:") {
		t.Fatalf("worker.js is not the bundled Hono app (%d bytes):\n%.500s", len(module), module)
	}
	cfg := meta["assets"].(map[string]any)["config"].(map[string]any)
	if cfg["not_found_handling"] != "single-page-application" {
		t.Fatalf("assets config = %v", cfg)
	}
	if len(sc.Assets) != 3 || sc.Assets["/index.html"] == "" || sc.Assets["/assets/app.js"] == "" {
		t.Fatalf("Worker assets = %v, want dist/'s three files", sc.Assets)
	}
	buildEnv, _ := fake.Asset(sc.Assets["/build-env.json"])
	if !strings.Contains(string(buildEnv), `"PATH"`) || strings.Contains(string(buildEnv), cfToken) || strings.Contains(string(buildEnv), "CLOUDFLARE") {
		t.Fatalf("the build's environment holds a Cloudflare setting (or was not captured): %s", buildEnv)
	}
	for _, line := range logMessages(st) {
		if strings.Contains(line, "finished in") || strings.Contains(line, "Worker bundled") || strings.Contains(line, "cloudflare:") {
			t.Logf("deployment log: %s", line)
		}
	}
	if !strings.Contains(logs, "Worker bundled: 1 modules") {
		t.Fatalf("no bundle line in the log:\n%s", tail(logs, 3000))
	}
	noSecret(t, s, st.body)
}

// TestCloudflareCustomDomain: a project's verified custom domain becomes a
// Workers custom domain in the configured zone and the deployment's URL;
// a pending one is left alone.
func TestCloudflareCustomDomain(t *testing.T) {
	fake, env := cloudflareFake(t, cfToken)
	s := startServer(t, append(env, "CLOUDFLARE_ZONE_ID="+fake.ZoneID, "CLOUDFLARE_ZONE_NAME="+fake.ZoneName, "DOMAIN_CHECK_INTERVAL=0")...)
	tok := s.setup("acme", "shop")
	for _, d := range []string{"shop.example.com", "pending.example.com"} {
		wantCode(t, s.do("POST", "/projects/shop/domains", map[string]any{"domain": d}, bearer(tok)...), 201, "")
	}
	markVerified(t, s, "shop.example.com")
	id := s.deployWait(tok, site("acme", "shop", map[string]string{"index.html": "<h1>shop</h1>"}), "completed")
	if got := s.waitFinal(id, time.Second).str("url"); got != "https://shop.example.com/" {
		t.Fatalf("url = %q, want the custom domain", got)
	}
	if got := fake.Domains(); len(got) != 1 || got["shop.example.com"] != "libra-shop" {
		t.Fatalf("Workers custom domains = %v, want only the verified one", got)
	}
	states := targetStates(t, s, tok, "/projects/shop/domains")
	if st := states["shop.example.com"]; st.Kind != "workers_custom_domain" || st.Status != "active" || st.Local != "verified" {
		t.Fatalf("shop.example.com on the domains list: %+v, want verified here and active on Cloudflare", st)
	}
	if st := states["pending.example.com"]; st.Status != "not_attached" || st.Local != "pending" {
		t.Fatalf("pending.example.com on the domains list: %+v, want pending here, not attached on Cloudflare", st)
	}
}

// targetDomain is a domain of a project's listing: the local state and
// the deploy target's.
type targetDomain struct {
	Local  string
	Kind   string `json:"kind"`
	Status string `json:"status"`
	SSL    string `json:"sslStatus"`
	Owner  *struct {
		Type, Name, Value string
	} `json:"ownershipVerification"`
	SSLValidation []struct{ Type, Name, Value string } `json:"sslValidation"`
	Errors        []string                             `json:"errors"`
}

// targetStates reads the domains at path (a project's listing or its
// detail) by name, with the target's state of each.
func targetStates(t *testing.T, s *server, tok, path string) map[string]targetDomain {
	t.Helper()
	r := s.do("GET", path, nil, bearer(tok)...)
	wantCode(t, r, 200, "")
	var body struct {
		Domains []struct {
			Domain string        `json:"domain"`
			Status string        `json:"status"`
			Target *targetDomain `json:"target"`
		} `json:"domains"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	out := map[string]targetDomain{}
	for _, d := range body.Domains {
		if d.Target == nil {
			t.Fatalf("%s in %s has no target state: %s", d.Domain, path, r.body)
		}
		d.Target.Local = d.Status
		out[d.Domain] = *d.Target
	}
	return out
}

// TestCloudflareCustomHostnames: with CLOUDFLARE_DOMAIN_MODE=saas a
// verified domain becomes a Cloudflare for SaaS custom hostname; the
// project's domains show Cloudflare's pending state with the TXT records
// its owner must add, then active once Cloudflare has checked them.
func TestCloudflareCustomHostnames(t *testing.T) {
	fake, env := cloudflareFake(t, cfToken)
	s := startServer(t, append(env, "CLOUDFLARE_ZONE_ID="+fake.ZoneID, "CLOUDFLARE_ZONE_NAME="+fake.ZoneName,
		"CLOUDFLARE_DOMAIN_MODE=saas", "CLOUDFLARE_DOMAIN_STATE_TTL=0", "DOMAIN_CHECK_INTERVAL=0")...)
	tok := s.setup("acme", "shop")
	wantCode(t, s.do("POST", "/projects/shop/domains", map[string]any{"domain": "shop.customer.org"}, bearer(tok)...), 201, "")
	if st := targetStates(t, s, tok, "/projects/shop/domains")["shop.customer.org"]; st.Kind != "custom_hostname" || st.Status != "not_attached" {
		t.Fatalf("before any deployment: %+v", st)
	}
	markVerified(t, s, "shop.customer.org")
	id := s.deployWait(tok, site("acme", "shop", map[string]string{"index.html": "<h1>shop</h1>"}), "completed")
	if got := s.waitFinal(id, time.Second).str("url"); got != "https://shop.customer.org/" {
		t.Fatalf("url = %q, want the custom hostname", got)
	}
	h := fake.CustomHostnames()["shop.customer.org"]
	if h.Origin != "libra-shop.example.com" {
		t.Fatalf("custom hostname %+v, want its origin the Worker's domain", h)
	}
	st := targetStates(t, s, tok, "/projects/shop/domains")["shop.customer.org"]
	if st.Status != "pending" || st.SSL != "pending_validation" || st.Owner == nil || st.Owner.Name != h.OwnershipName ||
		st.Owner.Value != h.OwnershipValue || len(st.SSLValidation) != 1 || st.SSLValidation[0].Value != h.SSLTXTValue ||
		len(st.Errors) != 1 || st.Errors[0] != h.VerificationErrors[0] {
		t.Fatalf("pending custom hostname shown as %+v; Cloudflare has %+v", st, h)
	}
	fake.SetCustomHostname("shop.customer.org", "active", "active")
	for _, path := range []string{"/projects/shop/domains", "/projects/shop"} {
		st := targetStates(t, s, tok, path)["shop.customer.org"]
		if st.Status != "active" || st.SSL != "active" || len(st.Errors) != 0 {
			t.Fatalf("%s after Cloudflare activated the hostname: %+v", path, st)
		}
	}
	noSecret(t, s)
}
