package main_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// storedTally is what the artifact store holds, counted by the test itself.
type storedTally struct {
	blobs int
	bytes int64
}

// diskTally walks a local artifact store's blob files.
func diskTally(t *testing.T, s *server) storedTally {
	t.Helper()
	var tally storedTally
	err := filepath.WalkDir(filepath.Join(s.dataDir, "artifacts", "sha256"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		tally.blobs++
		tally.bytes += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tally
}

// bucketTally lists the blob objects under the test's prefix.
func bucketTally(t *testing.T, gw *s3test.Server) storedTally {
	t.Helper()
	ctx := context.Background()
	prefix := s3Prefix + "/sha256/"
	var tally storedTally
	p := s3.NewListObjectsV2Paginator(gw.Client(ctx), &s3.ListObjectsV2Input{Bucket: &gw.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list bucket: %v", err)
		}
		for _, o := range page.Contents {
			tally.blobs++
			tally.bytes += *o.Size
		}
	}
	return tally
}

// TestStorageMetrics: /metrics reports what the artifact store holds (on
// disk and on S3) as the test counts it, measured at start and kept
// current by the garbage collector's passes, and the data directory's
// filesystem as statfs sees it.
func TestStorageMetrics(t *testing.T) {
	tests := []struct {
		name string
		env  func(t *testing.T) ([]string, func(*testing.T, *server) storedTally)
	}{
		{"local disk", func(t *testing.T) ([]string, func(*testing.T, *server) storedTally) {
			return nil, diskTally
		}},
		{"object store", func(t *testing.T) ([]string, func(*testing.T, *server) storedTally) {
			gw := s3test.Start(t)
			return gw.Env(s3Prefix), func(t *testing.T, _ *server) storedTally { return bucketTally(t, gw) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, count := tt.env(t)
			s := startServer(t, append(env, "ADMIN_TOKEN="+testAdminToken, "GC_INTERVAL=300ms")...)
			// At start: measured before the first pass, and empty.
			checkStoreMetrics(t, s, storedTally{})
			tok := s.setup("acme", "sized")
			r := s.deploy(tok, staticSite("acme", "sized", 5))
			if st := s.waitFinal(r.str("deploymentId"), 60*time.Second); st.str("status") != "completed" {
				t.Fatalf("deployment: %s", st.body)
			}
			want := count(t, s)
			if want.blobs < 5 || want.bytes == 0 {
				t.Fatalf("the store holds %+v after a deployment of 5 files", want)
			}
			checkStoreMetrics(t, s, want)
			checkFilesystemMetrics(t, s)
		})
	}
}

// checkStoreMetrics waits until /metrics reports want for the store.
func checkStoreMetrics(t *testing.T, s *server, want storedTally) {
	t.Helper()
	families, _ := scrapeWhen(t, s, func(f map[string]*dto.MetricFamily) bool {
		b, ok1 := metricValue(f, "libra_artifact_store_bytes")
		n, ok2 := metricValue(f, "libra_artifact_store_blobs")
		return ok1 && ok2 && b == float64(want.bytes) && n == float64(want.blobs)
	})
	b, _ := metricValue(families, "libra_artifact_store_bytes")
	n, _ := metricValue(families, "libra_artifact_store_blobs")
	at, _ := metricValue(families, "libra_artifact_store_measured_timestamp_seconds")
	if b != float64(want.bytes) || n != float64(want.blobs) || at <= 0 {
		t.Fatalf("/metrics: %v bytes in %v blobs (measured at %v); the store holds %d bytes in %d blobs", b, n, at, want.bytes, want.blobs)
	}
}

// checkFilesystemMetrics compares with statfs here. Other processes write
// to the same disk meanwhile, so free bytes match within a margin.
func checkFilesystemMetrics(t *testing.T, s *server) {
	t.Helper()
	families, _ := scrapeWhen(t, s, func(map[string]*dto.MetricFamily) bool { return true })
	var st unix.Statfs_t
	if err := unix.Statfs(s.dataDir, &st); err != nil {
		t.Fatal(err)
	}
	size, ok1 := metricValue(families, "libra_data_filesystem_size_bytes")
	free, ok2 := metricValue(families, "libra_data_filesystem_free_bytes")
	wantFree := float64(st.Bavail) * float64(st.Bsize)
	if !ok1 || !ok2 || size != float64(st.Blocks)*float64(st.Bsize) || math.Abs(free-wantFree) > 512<<20 || free <= 0 {
		t.Fatalf("filesystem: size %v free %v; statfs says size %v free %v", size, free, float64(st.Blocks)*float64(st.Bsize), wantFree)
	}
	t.Logf("data filesystem: %.1f GB free of %.1f GB", free/1e9, size/1e9)
}
