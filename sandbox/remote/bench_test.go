package remote

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A project of 500 files, 8 KiB each (4 MB, half of it incompressible),
// packed for upload and unpacked as a sync back.
func BenchmarkPackUnpack(b *testing.B) {
	src := b.TempDir()
	for i := range 500 {
		dir := filepath.Join(src, fmt.Sprintf("src/d%d", i%20))
		_ = os.MkdirAll(dir, 0o755)
		body := bytes.Repeat([]byte("export const x = 1;\n"), 410)[:8192]
		if i%2 == 0 {
			_, _ = rand.Read(body)
		}
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.js", i)), body, 0o644)
	}
	var size int
	for b.Loop() {
		data, err := Pack(src)
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
		if err := Unpack(bytes.NewReader(data), b.TempDir(), 1<<30); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)/1e6, "archive_MB")
	b.ReportMetric(4.096*float64(b.N)/b.Elapsed().Seconds(), "project_MB/s")
}
