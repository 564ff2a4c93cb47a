package cloudflare_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

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
