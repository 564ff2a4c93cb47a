package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/api"
)

type usageBody struct {
	OrgID    string `json:"orgId"`
	Projects []struct {
		ProjectID   string `json:"projectId"`
		Deployments int    `json:"deployments"`
		Files       int    `json:"files"`
		Bytes       int64  `json:"bytes"`
	} `json:"projects"`
	Total struct {
		Deployments int   `json:"deployments"`
		Files       int   `json:"files"`
		Bytes       int64 `json:"bytes"`
	} `json:"total"`
}

// GET /usage reports every project of the token's org, and a total in which
// a blob that two projects share counts once.
func TestUsage(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if err := e.db.CreateProject(ctx, libra.Project{ID: "proj-a2", OrgID: "org-a", Name: "A2", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	put := func(content string) (string, int64) {
		t.Helper()
		d, n, err := e.arts.Put(ctx, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		return d, n
	}
	file := func(content string) libra.ManifestFile {
		d, n := put(content)
		return libra.ManifestFile{Digest: d, Size: n}
	}
	// publish stores a manifest of files and a deployment of project that
	// published it, with inputs; it returns the manifest's stored size.
	publish := func(project, org string, files map[string]libra.ManifestFile, inputs ...libra.FileOp) int64 {
		t.Helper()
		d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: project, OrgID: org, UserID: "u",
			Status: libra.StatusCompleted, Steps: libra.NewStepStates(), CreatedAt: libra.Now(),
			QuotaMonth: libra.QuotaMonth(libra.Now()), Input: inputs}
		if err := e.db.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		if files == nil {
			return 0 // a deployment that never published
		}
		m, err := libra.PutManifest(ctx, e.arts, libra.Manifest{Files: files, NotFound: libra.NotFound404Page})
		if err != nil {
			t.Fatal(err)
		}
		size, _, err := e.arts.Stat(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.db.Publish(ctx, d.ID, m, ""); err != nil {
			t.Fatal(err)
		}
		return size
	}

	shared := file("body{color:teal}")
	indexA, indexA2 := file("<h1>a</h1>"), file("<h1>a2, longer</h1>")
	srcDigest, srcSize := put("a source file that only proj-a's input names")
	m1 := publish("proj-a", "org-a", map[string]libra.ManifestFile{"index.html": indexA, "s.css": shared},
		libra.FileOp{Path: "src/x.txt", Type: libra.OpCreate, Digest: srcDigest, Size: srcSize})
	m2 := publish("proj-a2", "org-a", map[string]libra.ManifestFile{"index.html": indexA2, "s.css": shared})
	// A queued deployment whose input is the shared file again.
	publish("proj-a2", "org-a", nil, libra.FileOp{Path: "s.css", Type: libra.OpCreate, Digest: shared.Digest, Size: shared.Size})
	mb := publish("proj-b", "org-b", map[string]libra.ManifestFile{"index.html": file("<h1>b</h1>"), "s.css": shared})

	get := func(header map[string]string) (response, usageBody) {
		t.Helper()
		r := e.do("GET", "/usage", nil, header)
		var u usageBody
		if r.status == 200 {
			if err := json.Unmarshal(r.raw, &u); err != nil {
				t.Fatalf("%s: %v", r.raw, err)
			}
		}
		return r, u
	}

	r, u := get(map[string]string{"Authorization": "Bearer " + e.tokenA})
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /usage: %d, Cache-Control %q: %s", r.status, r.header.Get("Cache-Control"), r.raw)
	}
	if u.OrgID != "org-a" {
		t.Errorf("orgId %q", u.OrgID)
	}
	type line struct {
		id          string
		deployments int
		files       int
		bytes       int64
	}
	aBytes := srcSize + indexA.Size + shared.Size + m1
	a2Bytes := indexA2.Size + shared.Size + m2
	want := []line{
		// The fixture's other org-a projects have no deployments.
		{brokenProject, 0, 0, 0},
		{panicProject, 0, 0, 0},
		{"proj-a", 1, 4, aBytes},
		{"proj-a2", 2, 3, a2Bytes},
	}
	var got []line
	for _, p := range u.Projects {
		got = append(got, line{p.ProjectID, p.Deployments, p.Files, p.Bytes})
	}
	if len(got) != len(want) {
		t.Fatalf("projects %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("project %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// The shared file counts in both projects but once in the total.
	if u.Total.Deployments != 3 || u.Total.Files != 6 || u.Total.Bytes != aBytes+a2Bytes-shared.Size {
		t.Errorf("total %+v, want 3 deployments, 6 files, %d bytes", u.Total, aBytes+a2Bytes-shared.Size)
	}

	// Per project, the same figures as GET /projects/{projectId}.
	for _, w := range want[2:] {
		p := e.do("GET", "/projects/"+w.id, nil, map[string]string{"Authorization": "Bearer " + e.tokenA})
		pu, _ := p.body["usage"].(map[string]any)
		if p.status != 200 || pu["deployments"] != float64(w.deployments) || pu["files"] != float64(w.files) || pu["bytes"] != float64(w.bytes) {
			t.Errorf("GET /projects/%s: %d usage %v, want %+v", w.id, p.status, pu, w)
		}
	}

	// The session cookie works too; org-b sees its own project only.
	_, ub := get(map[string]string{"Cookie": "session=" + e.tokenB})
	if ub.OrgID != "org-b" || len(ub.Projects) != 1 || ub.Projects[0].ProjectID != "proj-b" {
		t.Fatalf("org-b usage: %+v", ub)
	}
	bBytes := int64(len("<h1>b</h1>")) + shared.Size + mb
	if p := ub.Projects[0]; p.Deployments != 1 || p.Files != 3 || p.Bytes != bBytes {
		t.Errorf("proj-b: %+v, want 1 deployment, 3 files, %d bytes", p, bBytes)
	}
	if ub.Total.Deployments != 1 || ub.Total.Files != 3 || ub.Total.Bytes != bBytes {
		t.Errorf("org-b total %+v", ub.Total)
	}

	// An org with a token and no projects: an empty list, not null.
	tokC, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.CreateToken(ctx, libra.Token{Hash: api.HashToken(tokC), OrgID: "org-c", UserID: "u", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	rc, uc := get(map[string]string{"Authorization": "Bearer " + tokC})
	if rc.status != 200 || !strings.Contains(string(rc.raw), `"projects":[]`) || uc.Total.Deployments != 0 || uc.Total.Bytes != 0 {
		t.Errorf("org without projects: %d %s", rc.status, rc.raw)
	}

	for name, h := range map[string]map[string]string{
		"no token":       nil,
		"unknown token":  {"Authorization": "Bearer ld_nope"},
		"unknown cookie": {"Cookie": "session=ld_nope"},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do("GET", "/usage", nil, h)
			wantError(t, r, 401, "UNAUTHORIZED")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	wantError(t, e.do("POST", "/usage", nil, map[string]string{"Authorization": "Bearer " + e.tokenA}), 405, "METHOD_NOT_ALLOWED")
}

// The route is in the OpenAPI document, secured, with its errors.
func TestUsageOpenAPI(t *testing.T) {
	e := newEnv(t, nil)
	o := e.do("GET", "/openapi.json", nil, nil)
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]any        `json:"responses"`
			Security  []map[string][]string `json:"security"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(o.raw, &doc); err != nil {
		t.Fatal(err)
	}
	op, ok := doc.Paths["/usage"]["get"]
	if !ok {
		t.Fatal("no GET /usage")
	}
	if len(op.Security) == 0 || op.Responses["200"] == nil || op.Responses["401"] == nil {
		t.Errorf("GET /usage: %+v", op)
	}
	props, _ := doc.Components.Schemas["OrgUsage"]["properties"].(map[string]any)
	for _, k := range []string{"orgId", "projects", "total"} {
		if props[k] == nil {
			t.Errorf("OrgUsage schema lacks %s: %v", k, props)
		}
	}
	r := e.do("GET", "/", nil, nil)
	if !strings.Contains(string(r.raw), `"GET /usage"`) {
		t.Errorf("GET / does not list GET /usage: %s", r.raw)
	}
}
