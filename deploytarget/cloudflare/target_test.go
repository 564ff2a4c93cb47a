package cloudflare_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/artifact/fs"
	"github.com/libra-deploy/libra-deploy/deploytarget/cloudflare"
	"github.com/libra-deploy/libra-deploy/internal/fakecloudflare"
)

const (
	account = "0123456789abcdef0123456789abcdef"
	token   = "cf-test-token-do-not-leak"
)

// env is a fake Cloudflare account behind the spec checker, and an
// artifact store to publish from.
type env struct {
	fake   *fakecloudflare.Fake
	spec   *fakecloudflare.SpecChecker
	url    string
	store  *fs.Store
	target *cloudflare.Target
}

func newEnv(t testing.TB, cfg cloudflare.Config) *env { return newEnvChecked(t, cfg, true) }

// newEnvChecked builds the env; checked turns the spec check on (off only
// for the benchmark, which measures the client, not kin-openapi).
func newEnvChecked(t testing.TB, cfg cloudflare.Config, checked bool) *env {
	t.Helper()
	e := &env{fake: fakecloudflare.New(account, token)}
	var h http.Handler = e.fake
	spec, err := fakecloudflare.LoadSpec(fakecloudflare.FindSpec())
	switch {
	case !checked:
	case errors.Is(err, os.ErrNotExist):
		t.Logf("SKIPPING the spec check: %v (shared/specs is absent)", err)
	case err != nil:
		t.Fatal(err)
	default:
		e.spec = spec
		h = spec.Wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	if e.store, err = fs.New(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	cfg.APIBase, cfg.AccountID, cfg.RetryBase = srv.URL, account, 10*time.Millisecond
	if cfg.Token == "" {
		cfg.Token = token
	}
	if e.target, err = cloudflare.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.checkSpec(t) })
	return e
}

func (e *env) checkSpec(t testing.TB) {
	if e.spec == nil {
		return
	}
	checked, violations, unspecified := e.spec.Report()
	t.Logf("spec check: %d exchanges checked; outside the spec subset: %v", checked, unspecified)
	for _, v := range violations {
		t.Errorf("spec violation: %s", v)
	}
}

// manifest stores files and returns their manifest.
func (e *env) manifest(t testing.TB, files map[string]string) *libra.Manifest {
	t.Helper()
	m := &libra.Manifest{Files: map[string]libra.ManifestFile{}, NotFound: libra.NotFoundSPA}
	for p, content := range files {
		d, size, err := e.store.Put(context.Background(), strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		m.Files[p] = libra.ManifestFile{Digest: d, Size: size}
	}
	return m
}

func (e *env) publish(m *libra.Manifest) (string, error) {
	return e.target.Publish(context.Background(), libra.PublishRequest{ProjectID: "Proj_1", DeploymentID: "d1", Manifest: m, Artifacts: e.store})
}

var site = map[string]string{
	"index.html": "<h1>hello</h1>\n", "about/index.html": "<p>about</p>", "app.js": "console.log(1)",
	"style.css": "body{}", "logo.svg": "<svg/>", "_headers": "/*\n  X-Test: 1\n", "_redirects": "/old /new 301\n",
}

func TestPublishStaticSite(t *testing.T) {
	e := newEnv(t, cloudflare.Config{})
	url, err := e.publish(e.manifest(t, site))
	if err != nil {
		t.Fatal(err)
	}
	if url != "https://libra-proj_1.libra-test.workers.dev/" {
		t.Errorf("url = %s", url)
	}
	sc := e.fake.Script("libra-proj_1")
	if sc == nil {
		t.Fatal("no Worker uploaded")
	}
	if len(sc.Assets) != 5 || sc.Assets["/index.html"] != cloudflare.AssetHash([]byte(site["index.html"]), "index.html") {
		t.Errorf("Worker assets = %v", sc.Assets)
	}
	cfg := sc.Metadata["assets"].(map[string]any)["config"].(map[string]any)
	if cfg["_headers"] != site["_headers"] || cfg["_redirects"] != site["_redirects"] || cfg["not_found_handling"] != libra.NotFoundSPA {
		t.Errorf("assets config = %v", cfg)
	}
	if !sc.Subdomain || len(e.fake.Uploaded()) != 5 {
		t.Errorf("workers.dev enabled %v, uploaded %d assets, want 5", sc.Subdomain, len(e.fake.Uploaded()))
	}
	got, ok := e.fake.Asset(sc.Assets["/app.js"])
	if !ok || string(got) != site["app.js"] {
		t.Errorf("stored app.js = %q", got)
	}
}

func TestPublishUploadsOnlyWhatCloudflareLacks(t *testing.T) {
	e := newEnv(t, cloudflare.Config{})
	if _, err := e.publish(e.manifest(t, site)); err != nil {
		t.Fatal(err)
	}
	changed := map[string]string{}
	for k, v := range site {
		changed[k] = v
	}
	changed["app.js"] = "console.log(2)"
	changed["new.txt"] = "new"
	if _, err := e.publish(e.manifest(t, changed)); err != nil {
		t.Fatal(err)
	}
	if up := e.fake.Uploaded(); len(up) != 7 {
		t.Fatalf("uploaded %d assets over two deploys, want 5 + 2 changed", len(up))
	}
	// Publishing the same manifest again uploads nothing: a rollback.
	if _, err := e.publish(e.manifest(t, site)); err != nil {
		t.Fatal(err)
	}
	if up := e.fake.Uploaded(); len(up) != 7 {
		t.Fatalf("a republish uploaded %d assets", len(up)-7)
	}
}

func TestPublishFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		setup     func(*fakecloudflare.Fake)
		token     string
		permanent bool
		wantErr   string
	}{
		{name: "5xx on every step retried", setup: func(f *fakecloudflare.Fake) {
			f.Fail("/assets-upload-session", 503, 2)
			f.Fail("/assets/upload", 502, 2)
			f.Fail("/scripts/libra-proj_1", 500, 1)
			f.Fail("/workers/subdomain", 429, 1)
		}},
		{name: "upload token expired mid-upload: a new session resumes", setup: func(f *fakecloudflare.Fake) {
			f.ExpireUploadTokens(1)
		}},
		{name: "outage outlasting the retries", setup: func(f *fakecloudflare.Fake) {
			f.Fail("/assets-upload-session", 503, 100)
		}, wantErr: "Cloudflare failed to open an assets upload session: HTTP 503"},
		{name: "bad token", token: "wrong", permanent: true, wantErr: "Cloudflare refused the service's credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, cloudflare.Config{Token: tc.token, MaxAttempts: 4})
			if tc.setup != nil {
				tc.setup(e.fake)
			}
			_, err := e.publish(e.manifest(t, site))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if n := len(e.fake.Uploaded()); n != 5 {
					t.Errorf("uploaded %d assets, want each of 5 once", n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if libra.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v", libra.IsPermanent(err), tc.permanent)
			}
			if strings.Contains(err.Error(), token) {
				t.Error("the API token is in the error")
			}
		})
	}
}

func TestPublishIntoDispatchNamespace(t *testing.T) {
	e := newEnv(t, cloudflare.Config{DispatchNamespace: "customers", URLTemplate: "https://{script}.apps.example/"})
	url, err := e.publish(e.manifest(t, map[string]string{"index.html": "hi"}))
	if err != nil {
		t.Fatal(err)
	}
	if url != "https://libra-proj_1.apps.example/" {
		t.Errorf("url = %s", url)
	}
	if e.fake.Script("customers/libra-proj_1") == nil || e.fake.Script("libra-proj_1") != nil {
		t.Fatal("the Worker did not land in the dispatch namespace alone")
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  cloudflare.Config
		want string
	}{
		{"no token", cloudflare.Config{AccountID: account}, "CLOUDFLARE_API_TOKEN"},
		{"bad account", cloudflare.Config{AccountID: "../x", Token: token}, "CLOUDFLARE_ACCOUNT_ID"},
		{"template without project", cloudflare.Config{AccountID: account, Token: token, ScriptName: "site"}, "{project}"},
		{"namespace without URL", cloudflare.Config{AccountID: account, Token: token, DispatchNamespace: "ns"}, "CLOUDFLARE_URL_TEMPLATE"},
		{"bad base URL", cloudflare.Config{AccountID: account, Token: token, APIBase: "ftp://x"}, "CLOUDFLARE_API_BASE_URL"},
		{"zone id without its name", cloudflare.Config{AccountID: account, Token: token, ZoneID: "z"}, "CLOUDFLARE_ZONE_NAME"},
		{"saas without a zone", cloudflare.Config{AccountID: account, Token: token, DomainMode: "saas"}, "CLOUDFLARE_ZONE_ID"},
		{"unknown domain mode", cloudflare.Config{AccountID: account, Token: token, DomainMode: "pages"}, "CLOUDFLARE_DOMAIN_MODE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cloudflare.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// TestPartialUploadResumes: an upload cut off after its first bucket
// (an outage outlasting the retries) leaves those files with Cloudflare;
// the next attempt is asked only for the rest.
func TestPartialUploadResumes(t *testing.T) {
	e := newEnv(t, cloudflare.Config{MaxAttempts: 2})
	m := e.manifest(t, site)
	// The fake's buckets hold 3 files: the first bucket lands, then the
	// upload fails more often than one call retries.
	e.fake.FailAfter("/assets/upload", 503, 1, 2)
	if _, err := e.publish(m); err == nil || libra.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable failure", err)
	}
	if n := len(e.fake.Uploaded()); n != 3 {
		t.Fatalf("the cut-off upload stored %d assets, want the first bucket's 3", n)
	}
	if _, err := e.publish(m); err != nil {
		t.Fatal(err)
	}
	if n := len(e.fake.Uploaded()); n != 5 {
		t.Fatalf("after the resumed upload %d assets were uploaded in all, want each of 5 once", n)
	}
}

func TestPublishAttachesCustomDomains(t *testing.T) {
	for _, tc := range []struct {
		name, zone  string
		domains     []string
		wantURL     string
		wantAttach  map[string]string
		wantErrPart string
	}{
		{"attached in the zone", "fedcba9876543210fedcba9876543210", []string{"shop.example.com", "example.com"},
			"https://shop.example.com/", map[string]string{"shop.example.com": "libra-proj_1", "example.com": "libra-proj_1"}, ""},
		{"no zone configured: workers.dev", "", []string{"shop.example.com"},
			"https://libra-proj_1.libra-test.workers.dev/", map[string]string{}, ""},
		{"outside the zone: Cloudflare's refusal", "fedcba9876543210fedcba9876543210", []string{"shop.other.org"},
			"", nil, "not in zone example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zoneName := ""
			if tc.zone != "" {
				zoneName = "example.com"
			}
			e := newEnv(t, cloudflare.Config{ZoneID: tc.zone, ZoneName: zoneName})
			url, err := e.target.Publish(context.Background(), libra.PublishRequest{ProjectID: "Proj_1", Manifest: e.manifest(t, map[string]string{"index.html": "x"}),
				Artifacts: e.store, Domains: tc.domains})
			if tc.wantErrPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrPart) || !libra.IsPermanent(err) {
					t.Fatalf("err = %v, want a permanent one with %q", err, tc.wantErrPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if url != tc.wantURL || !reflect.DeepEqual(e.fake.Domains(), tc.wantAttach) {
				t.Fatalf("url %s, domains %v; want %s, %v", url, e.fake.Domains(), tc.wantURL, tc.wantAttach)
			}
		})
	}
}
