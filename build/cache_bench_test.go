package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkNodeModulesCache times saving a real node_modules tree
// (LIBRA_BENCH_TREE, e.g. the one an install of
// cmd/libra-deploy/testdata/aiapp wrote) into the org cache and restoring it,
// as every deployment with a cache key does once each (restored as the
// workflow restores it: ownership is left to the sandbox).
func BenchmarkNodeModulesCache(b *testing.B) {
	src := os.Getenv("LIBRA_BENCH_TREE")
	if src == "" {
		b.Skip("LIBRA_BENCH_TREE names no node_modules tree")
	}
	dir := b.TempDir()
	project := filepath.Join(dir, "project")
	if err := os.MkdirAll(project, 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src, filepath.Join(project, "node_modules")).CombinedOutput(); err != nil {
		b.Fatalf("copy %s: %v\n%s", src, err, out)
	}
	c := NewCache(filepath.Join(dir, "cache"))
	var save, restore time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := c.SaveNodeModules("org", "key", project); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := os.RemoveAll(filepath.Join(project, "node_modules")); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		hit, err := c.RestoreNodeModules("org", "key", project, -1, -1)
		if err != nil || !hit {
			b.Fatalf("restore: %v %v", hit, err)
		}
		save, restore = save+t1.Sub(t0), restore+time.Since(t2)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64(save/n)/1e6, "ms/save")
	b.ReportMetric(float64(restore/n)/1e6, "ms/restore")
	b.Logf("save %.0f ms, restore %.0f ms", float64(save/n)/1e6, float64(restore/n)/1e6)
}
