package cloudflare_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/deploytarget/cloudflare"
)

// BenchmarkPublish publishes a site of 500 files of 4 KiB to the fake:
// the first publish uploads every file, the second (a redeploy or a
// rollback) only hashes them and uploads the Worker. Run with
// go test -run '^$' -bench Publish -benchtime 3x ./deploytarget/cloudflare/
func BenchmarkPublish(b *testing.B) {
	files := map[string]string{}
	for i := range 500 {
		files[fmt.Sprintf("assets/file-%03d.js", i)] = strings.Repeat(fmt.Sprintf("/*%d*/", i), 4096/7)
	}
	for b.Loop() {
		e := newEnvChecked(b, cloudflare.Config{}, false)
		m := e.manifest(b, files)
		start := time.Now()
		if _, err := e.publish(m); err != nil {
			b.Fatal(err)
		}
		first := time.Since(start)
		start = time.Now()
		if _, err := e.publish(m); err != nil {
			b.Fatal(err)
		}
		again := time.Since(start)
		b.ReportMetric(float64(first.Milliseconds()), "ms/first-publish")
		b.ReportMetric(float64(again.Milliseconds()), "ms/republish")
		b.ReportMetric(float64(len(e.fake.Uploaded())), "assets-uploaded")
	}
}

// BenchmarkDomainStates reads the Cloudflare state of a project's 5 custom
// hostnames from the fake (one request each) and from the cache. Run with
// go test -run '^$' -bench DomainStates ./deploytarget/cloudflare/
func BenchmarkDomainStates(b *testing.B) {
	domains := []string{"a.customer.org", "b.customer.org", "c.customer.org", "d.customer.org", "e.customer.org"}
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"uncached", -1}, {"cached", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnvChecked(b, cloudflare.Config{ZoneID: "fedcba9876543210fedcba9876543210", ZoneName: "example.com",
				DomainMode: "saas", StateTTL: bc.ttl}, false)
			if _, err := e.target.Publish(context.Background(), libra.PublishRequest{ProjectID: "Proj_1",
				Manifest: e.manifest(b, map[string]string{"index.html": "x"}), Artifacts: e.store, Domains: domains}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if st := e.target.DomainStates(context.Background(), "Proj_1", domains); st["e.customer.org"].Status != "pending" {
					b.Fatalf("state %+v", st["e.customer.org"])
				}
			}
		})
	}
}
