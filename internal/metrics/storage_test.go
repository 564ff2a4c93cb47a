package metrics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

func TestArtifactStoreMeasured(t *testing.T) {
	for _, m := range []struct {
		blobs int
		bytes int64
	}{{3, 1500}, {0, 0}, {2, 1 << 40}} {
		ArtifactStoreMeasured(m.blobs, m.bytes)
		if got := testutil.ToFloat64(artifactBytes); got != float64(m.bytes) {
			t.Errorf("bytes = %v, want %d", got, m.bytes)
		}
		if got := testutil.ToFloat64(artifactBlobs); got != float64(m.blobs) {
			t.Errorf("blobs = %v, want %d", got, m.blobs)
		}
		if testutil.ToFloat64(artifactMeasured) <= 0 {
			t.Error("no measurement time")
		}
	}
}

// TestDataDirCollector: the figures are statfs's, and a missing directory
// yields no series rather than zeros.
func TestDataDirCollector(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("# HELP libra_data_filesystem_size_bytes %s\n# TYPE libra_data_filesystem_size_bytes gauge\nlibra_data_filesystem_size_bytes %d\n",
		"Size of the filesystem of the data directory, read at scrape time.", int64(st.Blocks)*st.Bsize)
	if err := testutil.CollectAndCompare(dataDirCollector{path: dir}, strings.NewReader(want), "libra_data_filesystem_size_bytes"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(dataDirCollector{path: dir + "/missing"}); n != 0 {
		t.Errorf("a missing directory gave %d series", n)
	}
	if n := testutil.CollectAndCount(dataDirCollector{path: dir}); n != 2 {
		t.Errorf("series: %d, want 2", n)
	}
}
