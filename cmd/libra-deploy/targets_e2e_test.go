package main_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// Deployment targets, promote and stable aliases (issue 11), over real HTTP
// against the real binary.

// targetSite is a static deploy body for project web of org acme whose
// index.html says text; extra sets target, alias or anything else.
func targetSite(text string, extra map[string]any) map[string]any {
	body := site("acme", "web", map[string]string{"index.html": "<!doctype html><p>" + text + "</p>"})
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// says fetches / on a host (see page) and returns its body, "" unless 200.
func (s *server) says(host string) string {
	s.t.Helper()
	r := s.page(host, "/")
	if r.status != 200 {
		return ""
	}
	return string(r.body)
}

func wantSays(t *testing.T, s *server, host, text string) {
	t.Helper()
	if got := s.says(host); !strings.Contains(got, "<p>"+text+"</p>") {
		t.Fatalf("%s serves %.200q, want %q", host, got, text)
	}
}

// A preview never moves production and serves at its own URL; promote
// moves production to it; a production deployment accepted before the
// preview that completes after the promote does not take production back.
func TestPreviewAndPromote(t *testing.T) {
	s := startServer(t, append([]string{"MAX_CONCURRENT_DEPLOYMENTS=2"}, noLimit...)...)
	tok := s.setup("acme", "web")
	v1 := s.deployWait(tok, targetSite("v1", nil), "completed")
	wantSays(t, s, "web", "v1")

	// The slow one is a production deployment whose build takes seconds;
	// the preview, accepted after it, is static and done long before.
	slowBuild := `sleep 8 && mkdir -p dist && echo '<!doctype html><p>slow</p>' > dist/index.html`
	r := s.deploy(tok, map[string]any{"projectId": "web", "orgId": "acme", "userId": "user-acme",
		"initFiles": nodeProject(map[string]string{"build": slowBuild})})
	if r.status != 202 {
		t.Fatalf("deploy the slow one: %d %s", r.status, r.body)
	}
	slow := r.str("deploymentId")
	preview := s.deployWait(tok, targetSite("preview", map[string]any{"target": "preview"}), "completed")

	st := s.do("GET", statusPath(preview), nil)
	if st.str("target") != "preview" || st.str("alias") != "" || st.str("aliasUrl") != "" {
		t.Fatalf("preview status: %s", st.body)
	}
	wantSays(t, s, preview, "preview")
	wantSays(t, s, "web", "v1")
	items := listItems(s.do("GET", "/projects/web/deployments", nil, bearer(tok)...))
	if len(items) != 3 || items[0]["target"] != "preview" || items[0]["production"] != false ||
		items[2]["id"] != v1 || items[2]["target"] != "production" || items[2]["production"] != true {
		t.Fatalf("list: %v", items)
	}

	if st := s.do("GET", statusPath(slow), nil); st.str("status") == "completed" || st.str("status") == "failed" {
		t.Fatalf("the slow deployment finished before the promote; the test proves nothing: %s", st.body)
	}
	pr := s.do("POST", "/deployments/"+preview+"/promote", nil, bearer(tok)...)
	wantCode(t, pr, 200, "")
	if pr.str("deploymentId") != preview || pr.str("previousDeploymentId") != v1 || pr.str("projectId") != "web" ||
		!strings.HasPrefix(pr.str("url"), "http://web.localhost") {
		t.Fatalf("promote: %s", pr.body)
	}
	wantSays(t, s, "web", "preview")

	if st := s.waitFinal(slow, 60*time.Second); st.str("status") != "completed" {
		t.Fatalf("slow deployment: %s\n%s", st.body, tail(s.logs.String(), 3000))
	}
	wantSays(t, s, slow, "slow")
	wantSays(t, s, "web", "preview")
	detail := s.do("GET", "/projects/web", nil, bearer(tok)...)
	if detail.str("currentDeployment") != preview {
		t.Fatalf("project after the slow one completed: %s", detail.body)
	}
	// The next production deployment moves production forward as usual.
	s.deployWait(tok, targetSite("v3", nil), "completed")
	wantSays(t, s, "web", "v3")
}

// Promote answers 404 for another org's deployment and for ids that are not
// one, 409 for a deployment that is not completed, and changes nothing.
func TestPromoteRefusals(t *testing.T) {
	s := startServer(t, append([]string{"LIBRA_TEST_HOOKS=build@web:permanent"}, noLimit...)...)
	tok := s.setup("acme", "web")
	other := s.setup("other", "theirs")
	failed := s.deployWait(tok, targetSite("broken", map[string]any{"target": "preview"}), "failed")
	mine := s.deployWait(other, site("other", "theirs", map[string]string{"index.html": "<p>theirs</p>"}), "completed")

	tests := []struct {
		name, tok, id string
		status        int
		code          string
	}{
		{"another org's deployment", tok, mine, 404, "DEPLOYMENT_NOT_FOUND"},
		{"an unknown deployment", tok, strings.Repeat("a", 26), 404, "DEPLOYMENT_NOT_FOUND"},
		{"not an id", tok, "nope", 404, "DEPLOYMENT_NOT_FOUND"},
		{"a failed deployment", tok, failed, 409, "CONFLICT"},
		{"no token", "", mine, 401, "UNAUTHORIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.tok != "" {
				hdr = bearer(tt.tok)
			}
			wantCode(t, s.do("POST", "/deployments/"+tt.id+"/promote", nil, hdr...), tt.status, tt.code)
		})
	}
	if d := s.do("GET", "/projects/theirs", nil, bearer(other)...); d.str("currentDeployment") != mine {
		t.Fatalf("refused promotes changed production: %s", d.body)
	}
	if d := s.do("GET", "/projects/web", nil, bearer(tok)...); d.str("currentDeployment") != "" {
		t.Fatalf("a failed deployment became production: %s", d.body)
	}
}

// An alias URL serves the newest completed deployment with that alias; a
// newer failed one does not move it; two aliases are independent; previews
// with aliases leave production alone; bad aliases and targets are 400 and
// create nothing.
func TestStableAliases(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	feat1 := s.deployWait(tok, targetSite("feat v1", map[string]any{"target": "preview", "alias": "feat"}), "completed")
	st := s.do("GET", statusPath(feat1), nil)
	aliasURL, err := url.Parse(st.str("aliasUrl"))
	if err != nil || st.str("alias") != "feat" || aliasURL.Host != "feat--web.localhost:"+s.port {
		t.Fatalf("status of an aliased deployment: %s", st.body)
	}
	wantSays(t, s, "feat--web", "feat v1")

	s.deployWait(tok, targetSite("feat v2", map[string]any{"target": "preview", "alias": "feat"}), "completed")
	wantSays(t, s, "feat--web", "feat v2")
	broken := map[string]any{"projectId": "web", "orgId": "acme", "userId": "user-acme", "target": "preview", "alias": "feat",
		"initFiles": nodeProject(map[string]string{"build": "echo broken >&2; exit 1"})}
	s.deployWait(tok, broken, "failed")
	wantSays(t, s, "feat--web", "feat v2")

	s.deployWait(tok, targetSite("fix v1", map[string]any{"target": "preview", "alias": "fix"}), "completed")
	wantSays(t, s, "fix--web", "fix v1")
	wantSays(t, s, "feat--web", "feat v2")
	wantSays(t, s, feat1, "feat v1") // its own URL still serves it
	if got := s.page("web", "/"); got.status != 404 {
		t.Fatalf("previews with aliases published production: %d %.200s", got.status, got.body)
	}

	// A production deployment may carry an alias too: both move.
	s.deployWait(tok, targetSite("feat v3", map[string]any{"alias": "feat"}), "completed")
	wantSays(t, s, "feat--web", "feat v3")
	wantSays(t, s, "web", "feat v3")
	items := listItems(s.do("GET", "/projects/web/deployments", nil, bearer(tok)...))
	if len(items) != 5 || items[0]["alias"] != "feat" || items[0]["target"] != "production" || items[4]["id"] != feat1 {
		t.Fatalf("list: %v", items)
	}

	bad := []struct {
		name  string
		extra map[string]any
		field string
	}{
		{"uppercase alias", map[string]any{"alias": "Feat"}, "alias"},
		{"alias with --", map[string]any{"alias": "a--b"}, "alias"},
		{"alias with a dot", map[string]any{"alias": "a.b"}, "alias"},
		{"alias too long for the label", map[string]any{"alias": strings.Repeat("a", 59)}, "alias"},
		{"unknown target", map[string]any{"target": "staging"}, "target"},
		{"preview with a custom domain", map[string]any{"target": "preview", "customDomain": "www.example.com"}, "customDomain"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := s.deploy(tok, targetSite("bad", tt.extra))
			wantCode(t, r, 400, "VALIDATION_ERROR")
			if !strings.Contains(string(r.body), `"field":"`+tt.field) {
				t.Fatalf("error does not name %s: %s", tt.field, r.body)
			}
		})
	}
	if n := len(listItems(s.do("GET", "/projects/web/deployments", nil, bearer(tok)...))); n != 5 {
		t.Fatalf("refused deployments were created: %d deployments", n)
	}
	// Deleting the project takes its aliases with it, at once.
	wantCode(t, s.do("DELETE", "/projects/web", nil, bearer(tok)...), 200, "")
	for _, host := range []string{"feat--web", "fix--web"} {
		if r := s.page(host, "/"); r.status != 404 {
			t.Fatalf("%s after the project was deleted: %d %.200s", host, r.status, r.body)
		}
	}
}

// SECURITY: an alias label {NAME}--{projectId} must never take a
// deployment's host name {projectHost}--{random}. An attacker who saw the
// victim's preview URL creates a project named like its random part and
// asks for an alias named like the victim's project: refused, and the
// victim's URL keeps serving the victim's site.
func TestAliasCannotTakeADeploymentsHostName(t *testing.T) {
	s := startServer(t, noLimit...)
	tok := s.setup("acme", "web")
	evil := s.admin("token", "create", "--org", "evil", "--user", "user-evil")
	victim := s.deployWait(tok, targetSite("victim", map[string]any{"target": "preview"}), "completed")
	host := s.siteHost(victim)
	label := strings.Split(host, ".")[0]
	name, random, ok := strings.Cut(label, "--")
	if !ok || name != "web" || len(random) != 13 {
		t.Fatalf("unexpected site label %q", label)
	}
	for _, project := range []string{random, "k3j4h5g6f7d8s"} {
		if r := s.do("POST", "/projects", map[string]any{"id": project}, bearer(evil)...); r.status != 201 {
			t.Fatalf("create project %s: %d %s", project, r.status, r.body)
		}
		r := s.deploy(evil, map[string]any{"projectId": project, "orgId": "evil", "userId": "user-evil", "target": "preview",
			"alias": name, "initFiles": []map[string]any{{"path": "index.html", "content": "<p>phished</p>"}}})
		wantCode(t, r, 400, "VALIDATION_ERROR")
		if !strings.Contains(string(r.body), "shape of a deployment") {
			t.Fatalf("refusal does not say why: %s", r.body)
		}
	}
	wantSays(t, s, victim, "victim")
	// The production alias, a name without "--", is never an alias's.
	s.deployWait(tok, targetSite("prod", nil), "completed")
	wantSays(t, s, "web", "prod")
	wantSays(t, s, victim, "victim")
}

// Two nodes on PostgreSQL: an alias moved through node 1 is served by both
// within the cluster's staleness bound, although cluster nodes trust a
// cached lookup for much longer; a promote through node 2 moves production
// on both.
func TestClusterAliases(t *testing.T) {
	dbURL := pgtest.Database(t, pgTemplate)
	gw := s3test.Start(t)
	nodes := []*server{startNode(t, dbURL, gw, 1), startNode(t, dbURL, gw, 2)}
	tok := pgAdmin(t, nodes[0], dbURL, "token", "create", "--org", "acme", "--user", "user-acme")
	pgAdmin(t, nodes[0], dbURL, "project", "create", "--org", "acme", "--id", "web")
	deploy := func(text string, extra map[string]any) string {
		r := nodes[0].deploy(tok, targetSite(text, extra))
		if r.status != 202 {
			t.Fatalf("deploy %s: %d %s", text, r.status, r.body)
		}
		id := r.str("deploymentId")
		if st := nodes[0].waitFinal(id, 60*time.Second); st.str("status") != "completed" {
			t.Fatalf("deployment %s: %s", text, st.body)
		}
		return id
	}
	deploy("feat v1", map[string]any{"target": "preview", "alias": "feat"})
	untilSays(t, nodes, "feat--web", "feat v1", time.Now(), 10*time.Second)

	v2 := deploy("feat v2", map[string]any{"target": "preview", "alias": "feat"})
	took := untilSays(t, nodes, "feat--web", "feat v2", time.Now(), 3*flipBound)
	t.Logf("alias moved through node-1: served on both nodes after %v (bound %s)", took, flipBound)

	r := nodes[1].do("POST", "/deployments/"+v2+"/promote", nil, bearer(tok)...)
	if r.status != 200 {
		t.Fatalf("promote through node-2: %d %s", r.status, r.body)
	}
	took = untilSays(t, nodes, "web", "feat v2", time.Now(), 3*flipBound)
	t.Logf("promote through node-2: production served on both nodes after %v (bound %s)", took, flipBound)
}

// untilSays waits until every node serves text on host, and returns how
// long each took after start; it fails past limit.
func untilSays(t *testing.T, nodes []*server, host, text string, start time.Time, limit time.Duration) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(nodes))
	for i, s := range nodes {
		for !strings.Contains(s.says(host), "<p>"+text+"</p>") {
			if time.Since(start) > limit {
				t.Fatalf("node-%d serves %.200q on %s, not %q, %s after the change", i+1, s.says(host), host, text, limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took[i] = time.Since(start)
	}
	return took
}
