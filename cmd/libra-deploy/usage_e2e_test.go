package main_test

import (
	"encoding/json"
	"testing"
)

// GET /usage end to end: an org's disk use per project and in total, where a
// file that two projects publish counts once; another org's projects never
// show; the figures agree with GET /projects/{projectId} and `disk --json`.
func TestOrgUsageRoute(t *testing.T) {
	s := startServer(t, noLimit...)
	tokA := s.setup("acme", "alpha")
	s.admin("project", "create", "--org", "acme", "--id", "beta")
	s.admin("project", "create", "--org", "acme", "--id", "empty") // never deploys
	tokB := s.setup("globex", "gamma")

	// Every file is small: it travels inline (no input blob) and is not
	// compressed (no variant blobs), so a site's blobs are its files and
	// its manifest.
	const shared = "body{color:teal}"
	alpha1 := map[string]string{"index.html": "<h1>alpha 1</h1>", "shared.css": shared}
	alpha2 := map[string]string{"index.html": "<h1>alpha 2</h1>", "shared.css": shared}
	beta := map[string]string{"index.html": "<h1>beta</h1>", "shared.css": shared}
	gamma := map[string]string{"index.html": "<h1>gamma</h1>", "shared.css": shared}
	s.deployWait(tokA, site("acme", "alpha", alpha1), "completed")
	s.deployWait(tokA, site("acme", "alpha", alpha2), "completed")
	s.deployWait(tokA, site("acme", "beta", beta), "completed")
	s.deployWait(tokB, site("globex", "gamma", gamma), "completed")

	siteBytes := func(files map[string]string) int {
		return len(files["index.html"]) + manifestSize(files)
	}
	alphaBytes := siteBytes(alpha1) + siteBytes(alpha2) + len(shared)
	betaBytes := siteBytes(beta) + len(shared)
	gammaBytes := siteBytes(gamma) + len(shared)

	type line struct {
		ProjectID   string `json:"projectId"`
		Deployments int    `json:"deployments"`
		Files       int    `json:"files"`
		Bytes       int    `json:"bytes"`
	}
	type usage struct {
		OrgID    string `json:"orgId"`
		Projects []line `json:"projects"`
		Total    struct {
			Deployments int `json:"deployments"`
			Files       int `json:"files"`
			Bytes       int `json:"bytes"`
		} `json:"total"`
	}
	get := func(tok string) usage {
		t.Helper()
		r := s.do("GET", "/usage", nil, bearer(tok)...)
		wantCode(t, r, 200, "")
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		var u usage
		if err := json.Unmarshal(r.body, &u); err != nil {
			t.Fatalf("GET /usage: %v: %s", err, r.body)
		}
		t.Logf("GET /usage: %s", r.body)
		return u
	}

	a := get(tokA)
	wantA := []line{
		{"alpha", 2, 5, alphaBytes}, // two index.html, shared.css once, two manifests
		{"beta", 1, 3, betaBytes},
		{"empty", 0, 0, 0},
	}
	if a.OrgID != "acme" || len(a.Projects) != len(wantA) {
		t.Fatalf("acme usage: %+v, want projects %+v", a, wantA)
	}
	for i, w := range wantA {
		if a.Projects[i] != w {
			t.Errorf("acme project %d: %+v, want %+v", i, a.Projects[i], w)
		}
	}
	// shared.css is in both projects and counts once in the total.
	if wantBytes := alphaBytes + betaBytes - len(shared); a.Total.Deployments != 3 || a.Total.Files != 7 || a.Total.Bytes != wantBytes {
		t.Errorf("acme total %+v, want 3 deployments, 7 files, %d bytes", a.Total, wantBytes)
	}
	if sum := alphaBytes + betaBytes; a.Total.Bytes >= sum {
		t.Errorf("acme total %d bytes is not below the projects' sum %d", a.Total.Bytes, sum)
	}

	b := get(tokB)
	if b.OrgID != "globex" || len(b.Projects) != 1 || b.Projects[0] != (line{"gamma", 1, 3, gammaBytes}) {
		t.Fatalf("globex usage: %+v", b)
	}
	if b.Total.Deployments != 1 || b.Total.Files != 3 || b.Total.Bytes != gammaBytes {
		t.Errorf("globex total %+v, want 1 deployment, 3 files, %d bytes", b.Total, gammaBytes)
	}

	// The same figures as GET /projects/{projectId} and the disk command.
	var disk struct {
		Projects []line `json:"projects"`
	}
	if err := json.Unmarshal([]byte(s.admin("disk", "--json")), &disk); err != nil {
		t.Fatal(err)
	}
	onDisk := map[string]line{}
	for _, p := range disk.Projects {
		onDisk[p.ProjectID] = p
	}
	for _, w := range wantA[:2] {
		r := s.do("GET", "/projects/"+w.ProjectID, nil, bearer(tokA)...)
		pu, _ := r.json["usage"].(map[string]any)
		if pu["deployments"] != float64(w.Deployments) || pu["files"] != float64(w.Files) || pu["bytes"] != float64(w.Bytes) {
			t.Errorf("GET /projects/%s usage %v, want %+v", w.ProjectID, pu, w)
		}
		if onDisk[w.ProjectID] != w {
			t.Errorf("disk --json has %+v for %s, want %+v", onDisk[w.ProjectID], w.ProjectID, w)
		}
	}

	wantCode(t, s.do("GET", "/usage", nil), 401, "UNAUTHORIZED")
	wantCode(t, s.do("GET", "/usage", nil, bearer("ld_not-a-token")...), 401, "UNAUTHORIZED")
}
