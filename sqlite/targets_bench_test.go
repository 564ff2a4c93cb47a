package sqlite_test

import (
	"context"
	"fmt"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// BenchmarkSiteByAlias measures what the site host asks the store on a
// cache miss for a stable alias host (a site-label miss, then the alias's
// newest published deployment), beside a deployment's own label, in a
// project with 2,000 published deployments spread over 20 aliases, and an
// alias whose only deployment is older than all of them.
func BenchmarkSiteByAlias(b *testing.B) {
	ctx := context.Background()
	db := open(b)
	if err := db.CreateProject(ctx, libra.Project{ID: "web", OrgID: "o", Name: "web", CreatedAt: libra.Now()}); err != nil {
		b.Fatal(err)
	}
	var first, last *libra.Deployment
	for i := range 2001 {
		alias := fmt.Sprintf("a%d", i%20)
		if i == 0 {
			alias = "old"
		}
		d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "web", OrgID: "o", UserID: "u",
			Target: libra.TargetPreview, Alias: alias,
			Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11",
			Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Digest: "sha256:00", Size: 1}}}
		if err := db.CreateDeployment(ctx, d); err != nil {
			b.Fatal(err)
		}
		if err := db.Publish(ctx, d.ID, "sha256:m", "http://x/"); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = d
		}
		last = d
	}
	lookups := []struct{ name, label, want string }{
		{"alias", last.Alias + "--web", last.ID},
		{"oldAlias", "old--web", first.ID},
		{"siteLabel", last.SiteLabel, last.ID},
	}
	for _, l := range lookups {
		b.Run(l.name, func(b *testing.B) {
			for b.Loop() {
				id, _, err := db.SiteByLabel(ctx, l.label)
				if err != nil || id != l.want {
					b.Fatalf("%s serves %s (%v), want %s", l.label, id, err, l.want)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/lookup")
		})
	}
}
