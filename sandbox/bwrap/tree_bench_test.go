package bwrap

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// benchTree copies the directory LIBRA_BENCH_TREE (e.g. the node_modules of
// cmd/libra-deploy/testdata/aiapp after an install) into a temporary
// directory, or skips: the walks below are only worth measuring on a tree of
// real size.
func benchTree(b *testing.B) string {
	b.Helper()
	src := os.Getenv("LIBRA_BENCH_TREE")
	if src == "" {
		b.Skip("LIBRA_BENCH_TREE names no tree to walk")
	}
	dst := filepath.Join(b.TempDir(), "tree")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		b.Fatalf("copy %s: %v\n%s", src, err, out)
	}
	return dst
}

// BenchmarkTreeWalks times the walks a sandbox makes over a project: the
// disk-use measurement (every DiskCheckInterval while a command runs) and
// the chown that hands the project to the build uid and back.
func BenchmarkTreeWalks(b *testing.B) {
	tree := benchTree(b)
	u, err := measureTree(tree)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("tree: %d entries, %.0f MiB", u.files, float64(u.bytes)/(1<<20))
	for _, w := range []struct {
		name string
		fn   func() error
	}{
		{"measure", func() error { _, err := measureTree(tree); return err }},
		{"chown", func() error { return chownTree(tree, 12345, 12345) }},
	} {
		b.Run(w.name, func(b *testing.B) {
			t0 := time.Now()
			for b.Loop() {
				if err := w.fn(); err != nil {
					b.Fatal(err)
				}
			}
			per := time.Since(t0) / time.Duration(b.N)
			b.ReportMetric(ms(per), "ms/walk")
			b.Logf("%s: %.1f ms per walk of %d entries", w.name, ms(per), u.files)
		})
	}
}
