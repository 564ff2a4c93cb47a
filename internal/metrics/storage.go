package metrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// The artifact store's size is measured by the garbage collector's passes,
// which list every blob anyway: a scrape never walks the store (an object
// store's listing costs requests and seconds). The series appear with the
// first measurement, so that no dashboard reads a 0 that nobody measured.
var (
	artifactBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "libra_artifact_store_bytes",
		Help: "Bytes of the blobs in the artifact store (local disk or object store), as of the last garbage collection pass.",
	})
	artifactBlobs = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "libra_artifact_store_blobs",
		Help: "Blobs in the artifact store, as of the last garbage collection pass.",
	})
	artifactMeasured = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "libra_artifact_store_measured_timestamp_seconds",
		Help: "When the artifact store was last measured (Unix time).",
	})
	artifactOnce sync.Once
)

// ArtifactStoreMeasured records what a pass over the artifact store found.
func ArtifactStoreMeasured(blobs int, bytes int64) {
	artifactOnce.Do(func() { Registry.MustRegister(artifactBytes, artifactBlobs, artifactMeasured) })
	artifactBlobs.Set(float64(blobs))
	artifactBytes.Set(float64(bytes))
	artifactMeasured.Set(float64(time.Now().UnixNano()) / 1e9)
}

var (
	dataFreeDesc = prometheus.NewDesc("libra_data_filesystem_free_bytes",
		"Bytes free for unprivileged use on the filesystem of the data directory, read at scrape time.", nil, nil)
	dataSizeDesc = prometheus.NewDesc("libra_data_filesystem_size_bytes",
		"Size of the filesystem of the data directory, read at scrape time.", nil, nil)
)

// dataDirCollector reads the data directory's filesystem with one statfs
// per scrape: a constant-time call, unlike summing the directory.
type dataDirCollector struct{ path string }

func (c dataDirCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dataFreeDesc
	ch <- dataSizeDesc
}

func (c dataDirCollector) Collect(ch chan<- prometheus.Metric) {
	var st unix.Statfs_t
	if err := unix.Statfs(c.path, &st); err != nil {
		return // nothing rather than a wrong figure; the service logs disk errors where they happen
	}
	bsize := float64(st.Bsize)
	ch <- prometheus.MustNewConstMetric(dataFreeDesc, prometheus.GaugeValue, float64(st.Bavail)*bsize)
	ch <- prometheus.MustNewConstMetric(dataSizeDesc, prometheus.GaugeValue, float64(st.Blocks)*bsize)
}

var registeredDataDir struct {
	sync.Mutex
	c prometheus.Collector
}

// RegisterDataDir reports the free and total bytes of dir's filesystem. A
// second call replaces the first, as RegisterQueue does.
func RegisterDataDir(dir string) error {
	registeredDataDir.Lock()
	defer registeredDataDir.Unlock()
	if registeredDataDir.c != nil {
		Registry.Unregister(registeredDataDir.c)
	}
	c := dataDirCollector{path: dir}
	if err := Registry.Register(c); err != nil {
		return fmt.Errorf("register data directory: %w", err)
	}
	registeredDataDir.c = c
	return nil
}
