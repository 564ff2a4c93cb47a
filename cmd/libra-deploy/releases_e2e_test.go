package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Releases end to end: deployment lists, production and rollback, deletion,
// custom domains, retention and garbage collection, over real HTTP against
// the real binary.

// noLimit lifts the API's per-token rate limit for tests that make many calls.
var noLimit = []string{"RATE_LIMIT_RPS=10000", "RATE_LIMIT_BURST=10000"}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// site is a deploy body whose files are exactly files.
func site(org, project string, files map[string]string) map[string]any {
	list := []map[string]any{}
	for p, c := range files {
		list = append(list, map[string]any{"path": p, "content": c})
	}
	return map[string]any{"projectId": project, "orgId": org, "userId": "user-" + org, "initFiles": list}
}

// deployWait deploys body and waits until the deployment is final, which
// must be want.
func (s *server) deployWait(tok string, body map[string]any, want string) string {
	s.t.Helper()
	r := s.deploy(tok, body)
	if r.status != 202 {
		s.t.Fatalf("POST /deploy: %d %s", r.status, r.body)
	}
	id := r.str("deploymentId")
	if st := s.waitFinal(id, 30*time.Second); st.str("status") != want {
		s.t.Fatalf("deployment %s is %s, want %s: %s", id, st.str("status"), want, st.body)
	}
	return id
}

// page fetches a site: host is a deployment id (its site host is used), a
// label under the sites domain, or a full host name (a custom domain).
func (s *server) page(host, path string) response {
	s.t.Helper()
	if h, ok := s.siteHosts.Load(host); ok {
		return s.do("GET", path, nil, "Host", h.(string))
	}
	if !strings.Contains(host, ".") {
		host += ".localhost"
	}
	return s.do("GET", path, nil, "Host", host+":"+s.port)
}

// wantCode checks a response's status and, for errors, the unified format.
func wantCode(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %.400s", r.status, status, r.body)
	}
	if status >= 400 && (r.json["success"] != false || r.str("error") != code || r.str("message") == "" || r.str("timestamp") == "") {
		t.Fatalf("want error %s in the unified format, got %.400s", code, r.body)
	}
}

func listItems(r response) []map[string]any {
	raw, _ := r.json["deployments"].([]any)
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i], _ = v.(map[string]any)
	}
	return out
}

func TestDeploymentListPagingAndProduction(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "site")
	// Oldest first: three completed, one failed (no files), one completed.
	var ids []string
	for i := range 3 {
		ids = append(ids, s.deployWait(tok, site("acme", "site", map[string]string{"index.html": fmt.Sprint("v", i)}), "completed"))
	}
	ids = append(ids, s.deployWait(tok, site("acme", "site", nil), "failed"))
	ids = append(ids, s.deployWait(tok, site("acme", "site", map[string]string{"index.html": "v4"}), "completed"))

	var got []map[string]any
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		path := "/projects/site/deployments?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := s.do("GET", path, nil, bearer(tok)...)
		wantCode(t, r, 200, "")
		if r.json["total"] != float64(5) || r.str("projectId") != "site" {
			t.Fatalf("page: %s", r.body)
		}
		items := listItems(r)
		if len(items) > 2 {
			t.Fatalf("page of %d with limit 2", len(items))
		}
		got = append(got, items...)
		cursor = r.str("nextCursor")
		if cursor == "" {
			break
		}
	}
	if len(got) != len(ids) {
		t.Fatalf("listed %d deployments, want %d", len(got), len(ids))
	}
	for i, item := range got {
		want := ids[len(ids)-1-i] // newest first
		if item["id"] != want {
			t.Fatalf("item %d is %v, want %s", i, item["id"], want)
		}
		isProd := want == ids[4]
		if item["production"] != isProd {
			t.Errorf("%s production = %v, want %v", want, item["production"], isProd)
		}
		created, _ := item["createdAt"].(string)
		finished, _ := item["finishedAt"].(string)
		if created == "" || finished == "" {
			t.Errorf("%s lacks times: %v", want, item)
		}
		switch want {
		case ids[3]:
			if item["status"] != "failed" || item["url"] != nil || item["error"] == nil {
				t.Errorf("failed deployment listed as %v", item)
			}
		default:
			if item["status"] != "completed" || item["url"] != "http://"+s.siteHost(want)+"/" {
				t.Errorf("completed deployment listed as %v", item)
			}
		}
	}

	for _, tt := range []struct {
		query  string
		status int
		code   string
	}{
		{"limit=0", 400, "VALIDATION_ERROR"},
		{"limit=101", 400, "VALIDATION_ERROR"},
		{"cursor=not-a-cursor", 400, "VALIDATION_ERROR"},
		{"cursor=-5", 400, "VALIDATION_ERROR"},
		{"limit=100", 200, ""},
	} {
		t.Run(tt.query, func(t *testing.T) {
			wantCode(t, s.do("GET", "/projects/site/deployments?"+tt.query, nil, bearer(tok)...), tt.status, tt.code)
		})
	}

	r := s.do("GET", "/projects/site", nil, bearer(tok)...)
	wantCode(t, r, 200, "")
	prod, _ := r.json["production"].(map[string]any)
	usage, _ := r.json["usage"].(map[string]any)
	if r.str("currentDeployment") != ids[4] || prod["id"] != ids[4] || r.json["pinned"] != false ||
		r.str("url") != fmt.Sprintf("http://site.localhost:%s/", s.port) {
		t.Fatalf("GET /projects/site: %s", r.body)
	}
	// Four published sites of one file each: four files and four manifests;
	// the failed deployment stored nothing.
	wantBytes := 0
	for _, c := range []string{"v0", "v1", "v2", "v4"} {
		wantBytes += len(c) + manifestSize(map[string]string{"index.html": c})
	}
	if usage["deployments"] != float64(5) || usage["files"] != float64(8) || usage["bytes"] != float64(wantBytes) {
		t.Fatalf("usage: %v, want 8 files of %d bytes", usage, wantBytes)
	}
}

func TestRollbackAndDelete(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "site")
	s.admin("project", "create", "--org", "acme", "--id", "other")
	v := func(name string) map[string]any {
		return site("acme", "site", map[string]string{"index.html": "<h1>" + name + "</h1>"})
	}
	a := s.deployWait(tok, v("A"), "completed")
	b := s.deployWait(tok, v("B"), "completed")
	c := s.deployWait(tok, v("C"), "completed")
	failed := s.deployWait(tok, site("acme", "site", nil), "failed")
	foreign := s.deployWait(tok, site("acme", "other", map[string]string{"index.html": "other"}), "completed")
	alias := func() string { return string(s.page("site", "/").body) }
	if got := alias(); got != "<h1>C</h1>" {
		t.Fatalf("alias before rollback: %q", got)
	}

	rollback := func(id string) response {
		return s.do("POST", "/projects/site/rollback", map[string]any{"deploymentId": id}, bearer(tok)...)
	}
	r := rollback(a)
	wantCode(t, r, 200, "")
	if r.json["success"] != true || r.str("deploymentId") != a || r.str("previousDeploymentId") != c {
		t.Fatalf("rollback: %s", r.body)
	}
	// The site host is told at once: no wait for a cache to expire.
	if got := alias(); got != "<h1>A</h1>" {
		t.Fatalf("alias right after rollback: %q", got)
	}
	p := s.do("GET", "/projects/site", nil, bearer(tok)...)
	if p.str("currentDeployment") != a || p.json["pinned"] != true {
		t.Fatalf("project after rollback: %s", p.body)
	}
	for _, item := range listItems(s.do("GET", "/projects/site/deployments", nil, bearer(tok)...)) {
		if (item["id"] == a) != (item["production"] == true) {
			t.Fatalf("production flag after rollback: %v", item)
		}
	}

	// Deleting: production is refused, another deployment goes, and its
	// immutable URL stops serving at once.
	if got := string(s.page(b, "/").body); got != "<h1>B</h1>" {
		t.Fatalf("b before delete: %q", got)
	}
	wantCode(t, s.do("DELETE", "/deployments/"+a, nil, bearer(tok)...), 409, "CONFLICT")
	r = s.do("DELETE", "/deployments/"+b, nil, bearer(tok)...)
	wantCode(t, r, 200, "")
	if r.json["success"] != true {
		t.Fatalf("delete: %s", r.body)
	}
	if r := s.page(b, "/"); r.status != 404 {
		t.Fatalf("deleted deployment's URL: %d %q", r.status, r.body)
	}
	wantCode(t, s.do("GET", "/deploy-status?id="+b, nil), 404, "DEPLOYMENT_NOT_FOUND")
	wantCode(t, s.do("DELETE", "/deployments/"+b, nil, bearer(tok)...), 404, "DEPLOYMENT_NOT_FOUND")
	if n := countRows(t, s, "SELECT count(*) FROM deployment_logs WHERE deployment_id = '"+b+"'"); n != 0 {
		t.Fatalf("%d log lines of a deleted deployment left", n)
	}

	for _, tt := range []struct {
		name, id string
		status   int
		code     string
	}{
		{"failed deployment", failed, 409, "CONFLICT"},
		{"another project's deployment", foreign, 404, "DEPLOYMENT_NOT_FOUND"},
		{"deleted deployment", b, 404, "DEPLOYMENT_NOT_FOUND"},
		{"unknown id", "aaaaaaaaaaaaaaaaaaaaaaaaaa", 404, "DEPLOYMENT_NOT_FOUND"},
		{"malformed id", "../../etc", 404, "DEPLOYMENT_NOT_FOUND"},
	} {
		t.Run("rollback to "+tt.name, func(t *testing.T) {
			wantCode(t, rollback(tt.id), tt.status, tt.code)
			if got := alias(); got != "<h1>A</h1>" {
				t.Fatalf("a refused rollback moved production: %q", got)
			}
		})
	}
	wantCode(t, s.do("POST", "/projects/site/rollback", map[string]any{}, bearer(tok)...), 400, "VALIDATION_ERROR")

	// The next deployment moves production forward again.
	d := s.deployWait(tok, v("D"), "completed")
	if got := alias(); got != "<h1>D</h1>" {
		t.Fatalf("alias after a new deployment: %q", got)
	}
	p = s.do("GET", "/projects/site", nil, bearer(tok)...)
	if p.str("currentDeployment") != d || p.json["pinned"] != false {
		t.Fatalf("project after a new deployment: %s", p.body)
	}
	// Rolling forward to a newer retained deployment works too.
	wantCode(t, rollback(c), 200, "")
	if got := alias(); got != "<h1>C</h1>" {
		t.Fatalf("alias after rolling to c: %q", got)
	}
}

func TestReleasesAuthorization(t *testing.T) {
	s := startServer(t, noLimit...)
	acme := s.setup("acme", "site")
	globex := s.setup("globex", "globex-site")
	id := s.deployWait(acme, site("acme", "site", map[string]string{"index.html": "acme"}), "completed")
	s.do("POST", "/projects/site/domains", map[string]any{"domain": "www.acme.test"}, bearer(acme)...)

	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/projects/%s", nil},
		{"GET", "/projects/%s/deployments", nil},
		{"POST", "/projects/%s/rollback", map[string]any{"deploymentId": id}},
		{"GET", "/projects/%s/domains", nil},
		{"POST", "/projects/%s/domains", map[string]any{"domain": "www.globex.test"}},
		{"DELETE", "/projects/%s/domains/www.acme.test", nil},
	}
	for _, rt := range routes {
		for _, tt := range []struct {
			name, project string
			header        []string
			status        int
			code          string
		}{
			{"no token", "site", nil, 401, "UNAUTHORIZED"},
			{"another org", "site", bearer(globex), 403, "FORBIDDEN"},
			{"unknown project", "nope", bearer(acme), 404, "PROJECT_NOT_FOUND"},
		} {
			path := fmt.Sprintf(rt.path, tt.project)
			t.Run(rt.method+" "+path+" "+tt.name, func(t *testing.T) {
				wantCode(t, s.do(rt.method, path, rt.body, tt.header...), tt.status, tt.code)
			})
		}
	}
	wantCode(t, s.do("DELETE", "/deployments/"+id, nil, bearer(globex)...), 403, "FORBIDDEN")
	wantCode(t, s.do("DELETE", "/deployments/"+id, nil), 401, "UNAUTHORIZED")
	wantCode(t, s.do("DELETE", "/deployments/aaaaaaaaaaaaaaaaaaaaaaaaaa", nil, bearer(globex)...), 404, "DEPLOYMENT_NOT_FOUND")

	// Nothing the other org tried changed anything.
	if got := string(s.page("site", "/").body); got != "acme" {
		t.Fatalf("alias: %q", got)
	}
	r := s.do("GET", "/projects/site/domains", nil, bearer(acme)...)
	if !strings.Contains(string(r.body), `"domain":"www.acme.test"`) || strings.Contains(string(r.body), "globex") {
		t.Fatalf("domains: %s", r.body)
	}
	if r := s.do("GET", "/deploy-status?id="+id, nil); r.str("status") != "completed" {
		t.Fatalf("deployment: %s", r.body)
	}
}

func TestCustomDomains(t *testing.T) {
	s, dns := startWithDNS(t, noLimit...)
	tok := s.setup("acme", "shop")
	s.admin("project", "create", "--org", "acme", "--id", "blog")
	addDomain := func(project, domain string) response {
		return s.do("POST", "/projects/"+project+"/domains", map[string]any{"domain": domain}, bearer(tok)...)
	}
	for _, tt := range []struct {
		name, project, domain string
		status                int
		code                  string
	}{
		{"attach", "shop", "WWW.Shop.Test.", 201, ""},
		{"attach again", "shop", "www.shop.test", 200, ""},
		{"another project's domain", "blog", "www.shop.test", 409, "DOMAIN_TAKEN"},
		{"ip address", "blog", "10.1.2.3", 400, "VALIDATION_ERROR"},
		{"under the sites domain", "blog", "blog.localhost", 400, "VALIDATION_ERROR"},
		{"one label", "blog", "intranet", 400, "VALIDATION_ERROR"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := addDomain(tt.project, tt.domain)
			wantCode(t, r, tt.status, tt.code)
			if tt.status < 300 && r.str("domain") != "www.shop.test" {
				t.Fatalf("domain not normalized: %s", r.body)
			}
		})
	}
	// Checked when the deployment is accepted, not only when it runs.
	body := site("acme", "blog", map[string]string{"index.html": "blog"})
	body["customDomain"] = "www.shop.test"
	r := s.deploy(tok, body)
	wantCode(t, r, 409, "DOMAIN_TAKEN")
	if n := countRows(t, s, "SELECT count(*) FROM deployments"); n != 0 {
		t.Fatalf("a refused deployment was created")
	}

	// A name that serves no site is left to the API (the site host's rule
	// for names outside the sites domain); once the project has a
	// production deployment, the domain serves it.
	notASite := func(r response) bool { return r.str("service") == "libra-deploy" }
	if r := s.page("www.shop.test", "/"); !notASite(r) {
		t.Fatalf("domain before any deployment: %d %s", r.status, r.body)
	}
	s.deployWait(tok, site("acme", "shop", map[string]string{"index.html": "shop v1"}), "completed")
	// Pending until its DNS record is verified: not a site yet.
	if r := s.page("www.shop.test", "/"); !notASite(r) {
		t.Fatalf("pending domain after deploy: %d %s", r.status, r.body)
	}
	s.verifyDomain(dns, tok, "shop", "www.shop.test")
	if r := s.page("www.shop.test", "/"); r.status != 200 || string(r.body) != "shop v1" {
		t.Fatalf("domain after deploy: %d %q", r.status, r.body)
	}
	// customDomain on a deployment attaches the domain when it completes.
	body = site("acme", "blog", map[string]string{"index.html": "blog v1"})
	body["customDomain"] = "blog.example.test"
	s.deployWait(tok, body, "completed")
	r = s.do("GET", "/projects/blog/domains", nil, bearer(tok)...)
	if !strings.Contains(string(r.body), `"domain":"blog.example.test","status":"pending"`) {
		t.Fatalf("blog domains: %s", r.body)
	}
	if r := s.page("blog.example.test", "/"); !notASite(r) {
		t.Fatalf("pending blog domain: %d %q", r.status, r.body)
	}
	s.verifyDomain(dns, tok, "blog", "blog.example.test")
	if r := s.page("blog.example.test", "/"); string(r.body) != "blog v1" {
		t.Fatalf("blog domain: %d %q", r.status, r.body)
	}
	p := s.do("GET", "/projects/shop", nil, bearer(tok)...)
	if !strings.Contains(string(p.body), `"domains":[{"domain":"www.shop.test"`) {
		t.Fatalf("project: %s", p.body)
	}

	// Detached: the name stops serving at once, and may go to another project.
	wantCode(t, s.do("DELETE", "/projects/shop/domains/www.shop.test", nil, bearer(tok)...), 200, "")
	if r := s.page("www.shop.test", "/"); !notASite(r) {
		t.Fatalf("detached domain still serves: %d %q", r.status, r.body)
	}
	wantCode(t, s.do("DELETE", "/projects/shop/domains/www.shop.test", nil, bearer(tok)...), 404, "NOT_FOUND")
	wantCode(t, addDomain("blog", "www.shop.test"), 201, "")
	// Verified again, with the blog's own token: the shop's, still in the
	// DNS, does not count.
	if r := s.page("www.shop.test", "/"); !notASite(r) {
		t.Fatalf("domain moved to blog serves before it is verified: %d %q", r.status, r.body)
	}
	r = s.do("POST", "/projects/blog/domains/www.shop.test/verify", nil, bearer(tok)...)
	if r.status != 200 || r.json["verified"] != false || r.str("status") != "pending" {
		t.Fatalf("verify with another project's token: %d %s", r.status, r.body)
	}
	s.verifyDomain(dns, tok, "blog", "www.shop.test")
	if r := s.page("www.shop.test", "/"); string(r.body) != "blog v1" {
		t.Fatalf("domain moved to blog: %d %q", r.status, r.body)
	}
}

// TestAliasSwitchUnderLoad hammers a project's alias while production moves
// between two versions, by new deployments and rollbacks. Every response
// must be whole: status 200, and headers and body all of one version.
func TestAliasSwitchUnderLoad(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "flip")
	// Different sizes per version, so a body or a Content-Length from the
	// other version cannot pass for this one.
	files := map[string]map[string]string{}
	for v, n := range map[string]int{"v1": 3000, "v2": 4100} {
		files[v] = map[string]string{
			"index.html": "<!doctype html><title>" + v + "</title>" + strings.Repeat("<p>"+v+"</p>\n", n) + "<script src=/app.js></script>",
			"app.js":     strings.Repeat("console.log('"+v+"');\n", n/2),
		}
	}
	paths := map[string]string{"/": "index.html", "/app.js": "app.js"}
	v1 := s.deployWait(tok, site("acme", "flip", files["v1"]), "completed")

	// Half the clients take the bytes as stored, half ask for gzip (and
	// get them decompressed by the transport): both paths must be whole.
	clients := []*http.Client{
		{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}},
		{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	}
	var (
		stop     atomic.Bool
		requests atomic.Int64
		seen     sync.Map // version -> *atomic.Int64
		etags    sync.Map // path, version and encoding -> ETag first seen
		errMu    sync.Mutex
		errs     []string
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				path := "/"
				if (i+g)%2 == 1 {
					path = "/app.js"
				}
				req, _ := http.NewRequest("GET", s.url+path, nil)
				req.Host = "flip.localhost:" + s.port
				resp, err := clients[g%2].Do(req)
				if err != nil {
					fail("GET %s: %v", path, err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				requests.Add(1)
				if err != nil || resp.StatusCode != 200 {
					fail("GET %s: %d %v", path, resp.StatusCode, err)
					continue
				}
				version := ""
				for v := range files {
					if string(body) == files[v][paths[path]] {
						version = v
					}
				}
				if version == "" {
					fail("GET %s: a body of %d bytes that is neither version whole", path, len(body))
					continue
				}
				if cl := resp.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(body)) {
					fail("GET %s: Content-Length %s for the %d bytes of %s", path, cl, len(body), version)
				}
				if et := resp.Header.Get("ETag"); et != "" {
					// A gzipped representation has its own ETag.
					key := fmt.Sprint(path, " ", version, " ", resp.Uncompressed)
					if first, _ := etags.LoadOrStore(key, et); first != et {
						fail("GET %s: ETag %s with the body of %s, whose ETag is %s", path, et, version, first)
					}
				}
				n, _ := seen.LoadOrStore(version, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}

	// Production moves nine times while the load runs. After each move the
	// alias must serve the new version at once.
	wantAlias := func(v string) {
		t.Helper()
		if got := string(s.page("flip", "/").body); got != files[v]["index.html"] {
			t.Fatalf("alias does not serve %s right after the switch (%d bytes)", v, len(got))
		}
	}
	time.Sleep(200 * time.Millisecond)
	for range 3 {
		v2 := s.deployWait(tok, site("acme", "flip", files["v2"]), "completed")
		wantAlias("v2")
		wantCode(t, s.do("POST", "/projects/flip/rollback", map[string]any{"deploymentId": v1}, bearer(tok)...), 200, "")
		wantAlias("v1")
		time.Sleep(100 * time.Millisecond)
		wantCode(t, s.do("POST", "/projects/flip/rollback", map[string]any{"deploymentId": v2}, bearer(tok)...), 200, "")
		wantAlias("v2")
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	for _, e := range errs {
		t.Error(e)
	}
	counts := map[string]int64{}
	seen.Range(func(k, v any) bool { counts[k.(string)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d requests, by version %v", requests.Load(), counts)
	if counts["v1"] == 0 || counts["v2"] == 0 || requests.Load() < 500 {
		t.Fatalf("the load did not see both versions: %d requests, %v", requests.Load(), counts)
	}
}

// blobFile is where the artifact store keeps content.
func blobFile(s *server, content string) string {
	sum := sha256.Sum256([]byte(content))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(s.dataDir, "artifacts", "sha256", h[:2], h[2:])
}

// manifestSize is the size of the manifest that publishing a static site's
// files stores: JSON, {"files": {path: {digest, size}}, "notFound": "404-page"},
// keys sorted.
func manifestSize(files map[string]string) int {
	m := map[string]map[string]any{}
	for p, c := range files {
		sum := sha256.Sum256([]byte(c))
		m[p] = map[string]any{"digest": "sha256:" + hex.EncodeToString(sum[:]), "size": len(c)}
	}
	b, err := json.Marshal(map[string]any{"files": m, "notFound": "404-page"})
	if err != nil {
		panic(err)
	}
	return len(b)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestGCKeepsWhatItMustAndRemovesWhatItMay(t *testing.T) {
	s := startServer(t, append([]string{"LIBRA_TEST_HOOKS=build@slow:sleep:3s", "DEPLOYMENT_RETENTION=2", "GC_INTERVAL=0"}, noLimit...)...)
	tok := s.setup("acme", "site")
	s.admin("project", "create", "--org", "acme", "--id", "slow")
	poor := s.setup("poor", "poor-site")
	s.admin("quota", "set", "--org", "poor", "--limit", "0")

	content := func(i int) string { return fmt.Sprintf("<h1>site v%d</h1>", i) }
	const shared = "body{color:teal}"
	ids := []string{""} // 1-based
	for i := 1; i <= 5; i++ {
		ids = append(ids, s.deployWait(tok, site("acme", "site", map[string]string{"index.html": content(i), "shared.css": shared}), "completed"))
	}
	wantCode(t, s.do("POST", "/projects/site/rollback", map[string]any{"deploymentId": ids[2]}, bearer(tok)...), 200, "")

	// Files of requests that were refused after their content was stored:
	// referenced by nothing, one old enough to go and one too young.
	// Inputs over the inline limit (8 KiB) go through the artifact store,
	// which is what this test is about; smaller ones travel in the row.
	pad := strings.Repeat(".", 9<<10)
	orphanOld, orphanYoung := "orphan: old enough"+pad, "orphan: in flight"+pad
	for _, c := range []string{orphanOld, orphanYoung} {
		wantCode(t, s.deploy(poor, site("poor", "poor-site", map[string]string{"a.txt": c})), 429, "QUOTA_EXCEEDED")
	}
	// A deployment in progress: its input must survive, whatever its age.
	slowInput := "<h1>slow and steady</h1>" + pad
	slow := s.deploy(tok, site("acme", "slow", map[string]string{"index.html": slowInput})).str("deploymentId")
	s.waitFor(slow, 10*time.Second, func(r response) bool { return r.str("currentStep") == "build" })
	wantCode(t, s.do("DELETE", "/deployments/"+slow, nil, bearer(tok)...), 409, "CONFLICT")

	// Age every blob past the grace period, except the young orphan.
	old := time.Now().Add(-3 * time.Hour)
	err := filepath.WalkDir(filepath.Join(s.dataDir, "artifacts", "sha256"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == blobFile(s, orphanYoung) {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}

	kept := map[string]string{
		"production (rolled back to)": content(2),
		"newest":                      content(5),
		"second newest":               content(4),
		"shared by kept and pruned":   shared,
		"running deployment's input":  slowInput,
		"young orphan":                orphanYoung,
	}
	removed := map[string]string{"pruned v1": content(1), "pruned v3": content(3), "old orphan": orphanOld}
	for name, c := range removed {
		if !exists(blobFile(s, c)) {
			t.Fatalf("%s is not stored before gc", name)
		}
	}

	// The admin command has its own environment: retention comes as a flag.
	out := s.admin("gc", "--dry-run", "--retention", "2")
	if !strings.Contains(out, "would prune 2 deployments") || !strings.Contains(out, ids[1]) || !strings.Contains(out, ids[3]) ||
		!strings.Contains(out, "would remove") {
		t.Fatalf("gc --dry-run:\n%s", out)
	}
	for name, c := range removed {
		if !exists(blobFile(s, c)) {
			t.Fatalf("gc --dry-run removed %s", name)
		}
	}
	if n := countRows(t, s, "SELECT count(*) FROM deployments WHERE project_id = 'site'"); n != 5 {
		t.Fatalf("gc --dry-run deleted deployments: %d left", n)
	}

	out = s.admin("gc", "--retention", "2")
	t.Logf("gc:\n%s", out)
	if !strings.Contains(out, "pruned 2 deployments") || strings.Contains(out, "removed 0 blobs") {
		t.Fatalf("gc:\n%s", out)
	}
	if !strings.Contains(s.do("GET", "/deploy-status?id="+slow, nil).str("currentStep"), "build") {
		t.Fatal("the slow deployment was no longer building during gc; the test proves nothing")
	}
	for name, c := range kept {
		if !exists(blobFile(s, c)) {
			t.Errorf("gc removed %s", name)
		}
	}
	for name, c := range removed {
		if exists(blobFile(s, c)) {
			t.Errorf("gc kept %s", name)
		}
	}

	// What was pruned is gone everywhere; what was kept still serves.
	for _, id := range []string{ids[1], ids[3]} {
		wantCode(t, s.do("GET", "/deploy-status?id="+id, nil), 404, "DEPLOYMENT_NOT_FOUND")
		if r := s.page(id, "/"); r.status != 404 {
			t.Errorf("pruned deployment %s still serves: %d", id, r.status)
		}
	}
	for _, i := range []int{2, 4, 5} {
		if r := s.page(ids[i], "/"); r.status != 200 || string(r.body) != content(i) {
			t.Errorf("kept deployment v%d: %d %q", i, r.status, r.body)
		}
		if r := s.page(ids[i], "/shared.css"); r.status != 200 || string(r.body) != shared {
			t.Errorf("kept deployment v%d shared.css: %d %q", i, r.status, r.body)
		}
	}
	if r := s.page("site", "/"); string(r.body) != content(2) {
		t.Errorf("alias after gc: %q", r.body)
	}
	list := s.do("GET", "/projects/site/deployments", nil, bearer(tok)...)
	if list.json["total"] != float64(3) {
		t.Errorf("after gc: %s", list.body)
	}

	// The deployment that was running completes from the input gc kept.
	if st := s.waitFinal(slow, 30*time.Second); st.str("status") != "completed" {
		t.Fatalf("slow deployment: %s", st.body)
	}
	if r := s.page("slow", "/"); string(r.body) != slowInput {
		t.Fatalf("slow deployment serves %d %q", r.status, r.body)
	}

	// Disk use, from the CLI and per project from the API.
	disk := s.admin("disk")
	if !strings.Contains(disk, "PROJECT") || !strings.Contains(disk, "site") || !strings.Contains(disk, "artifacts:") {
		t.Fatalf("disk:\n%s", disk)
	}
	p := s.do("GET", "/projects/site", nil, bearer(tok)...)
	usage, _ := p.json["usage"].(map[string]any)
	wantBytes := len(shared)
	for _, i := range []int{2, 4, 5} {
		wantBytes += len(content(i)) + manifestSize(map[string]string{"index.html": content(i), "shared.css": shared})
	}
	if usage["deployments"] != float64(3) || usage["bytes"] != float64(wantBytes) {
		t.Fatalf("usage after gc: %v, want %d bytes", usage, wantBytes)
	}
}

func TestPeriodicGCInServe(t *testing.T) {
	s := startServer(t, append([]string{"DEPLOYMENT_RETENTION=1", "GC_INTERVAL=200ms"}, noLimit...)...)
	tok := s.setup("acme", "site")
	var ids []string
	for i := range 3 {
		ids = append(ids, s.deployWait(tok, site("acme", "site", map[string]string{"index.html": fmt.Sprint("v", i)}), "completed"))
		if r := s.page(ids[i], "/"); r.status != 200 {
			t.Fatalf("v%d: %d", i, r.status)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := s.do("GET", "/projects/site/deployments", nil, bearer(tok)...)
		if r.json["total"] == float64(1) {
			if items := listItems(r); items[0]["id"] != ids[2] || items[0]["production"] != true {
				t.Fatalf("kept the wrong deployment: %s", r.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not prune: %s\n%s", r.body, tail(s.logs.String(), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range ids[:2] {
		if r := s.page(id, "/"); r.status != 404 {
			t.Errorf("pruned %s still serves: %d", id, r.status)
		}
	}
	if r := s.page("site", "/"); string(r.body) != "v2" {
		t.Fatalf("alias: %q", r.body)
	}
}
