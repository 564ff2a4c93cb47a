package sitehost

import (
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// A flip announced by another node (libra.SiteChange) drops exactly the
// lookups it names; ForgetAll drops every one. The TTL is an hour, so only
// Forget can make a name see the change.
func TestForgetSiteChanges(t *testing.T) {
	hosts := []string{"proj.localhost", "proj.test", "other.test"}
	tests := []struct {
		name   string
		forget func(h *Host, hidden string)
		// want maps each host to the version it serves afterwards ("" for
		// a 404); the hidden deployment's own host is "hidden".
		want map[string]string
	}{
		{"project", func(h *Host, _ string) { h.Forget(libra.SiteChange{ProjectHost: "proj"}) },
			// The alias and every custom domain: which project a domain
			// belongs to is not known here.
			map[string]string{"proj.localhost": "v2", "proj.test": "v2", "other.test": "v2", "hidden": ""}},
		{"domain", func(h *Host, _ string) { h.Forget(libra.SiteChange{Domain: "Proj.Test."}) },
			map[string]string{"proj.localhost": "v1", "proj.test": "v2", "other.test": "v1", "hidden": ""}},
		{"label", func(h *Host, hidden string) { h.Forget(libra.SiteChange{SiteLabel: hidden}) },
			map[string]string{"proj.localhost": "v1", "proj.test": "v1", "other.test": "v1", "hidden": "v3"}},
		{"all", func(h *Host, _ string) { h.ForgetAll() },
			map[string]string{"proj.localhost": "v2", "proj.test": "v2", "other.test": "v2", "hidden": "v3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{AliasTTL: time.Hour})
			v1 := e.publish(map[string]string{"index.html": "v1"})
			v2 := e.publish(map[string]string{"index.html": "v2"})
			v3 := e.publish(map[string]string{"index.html": "v3"})
			hidden := v3 + ".localhost"
			var v3Manifest string
			e.res.set(func(r *memResolver) {
				r.projects["proj"] = v1
				r.domains["proj.test"], r.domains["other.test"] = v1, v1
				v3Manifest = r.deployments[v3]
				delete(r.deployments, v3) // not published yet: a cached 404
			})
			for _, h := range append(hosts, hidden) {
				e.get(h, "/")
			}
			// The flip, as another node made it: this node heard nothing.
			e.res.set(func(r *memResolver) {
				r.projects["proj"] = v2
				r.domains["proj.test"], r.domains["other.test"] = v2, v2
				r.deployments[v3] = v3Manifest
			})
			tc.forget(e.host, v3)
			for h, want := range tc.want {
				if h == "hidden" {
					h = hidden
				}
				r := e.get(h, "/")
				if got := map[bool]string{true: r.body, false: ""}[r.status == 200]; got != want {
					t.Errorf("%s: %d %q, want %q", h, r.status, r.body, want)
				}
			}
		})
	}
}
