package main_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// BenchmarkS3FirstByte measures the time to the first byte of a site file
// on a node whose artifact store is S3 (versitygw on this machine): when the
// node must fill its blob cache from S3 first, and when it has the file.
// Small files are then held in the site host's memory; large ones (over its
// 8 MiB per-file limit) are sent from the blob cache's file by sendfile.
func BenchmarkS3FirstByte(b *testing.B) {
	gw := s3test.Start(b)
	s := startServer(b, append(gw.Env("bench"), noLimit...)...)
	tok := s.setup("acme", "bench")
	const smalls, larges = 20, 3
	var list []map[string]any
	want := map[string]int{}
	for i := range smalls {
		p := fmt.Sprintf("s-%d.bin", i)
		list = append(list, benchFile(p, 20<<10))
		want[p] = 20 << 10
	}
	for i := range larges {
		p := fmt.Sprintf("l-%d.bin", i)
		list = append(list, benchFile(p, 9<<20))
		want[p] = 9 << 20
	}
	list = append(list, map[string]any{"path": "index.html", "content": "<h1>bench</h1>"})
	s.deployWait(tok, map[string]any{"projectId": "bench", "orgId": "acme", "userId": "user-acme", "initFiles": list}, "completed")

	restart := func(keepCache bool) {
		if err := s.stop(10 * time.Second); err != nil {
			b.Fatal(err)
		}
		if !keepCache {
			if err := os.RemoveAll(filepath.Join(s.dataDir, "blob-cache")); err != nil {
				b.Fatal(err)
			}
		}
		s.start()
		// The site's manifest is loaded (and cached) by the first request.
		firstByte(b, s, "index.html", -1)
	}
	measure := func(name, unit, prefix string, n, size int) {
		var d []time.Duration
		for i := range n {
			d = append(d, firstByte(b, s, fmt.Sprintf("%s-%d.bin", prefix, i), size))
		}
		slices.Sort(d)
		b.Logf("%-46s p50 %8.2f ms  max %8.2f ms  (%d files)", name, millis(d[len(d)/2]), millis(d[len(d)-1]), n)
		b.ReportMetric(millis(d[len(d)/2]), unit+"-p50-ms")
	}
	b.ResetTimer()
	for range b.N {
		restart(false)
		measure("20 KiB, fill from S3", "small-s3", "s", smalls, 20<<10)
		measure("20 KiB, from memory", "small-mem", "s", smalls, 20<<10)
		measure("9 MiB, fill from S3", "large-s3", "l", larges, 9<<20)
		measure("9 MiB, from the blob cache (sendfile)", "large-cache", "l", larges, 9<<20)
		restart(true)
		measure("20 KiB, from the blob cache after restart", "small-cache", "s", smalls, 20<<10)
	}
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchFile is a file of n random bytes, which no encoding shrinks.
func benchFile(path string, n int) map[string]any {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // never fails (crypto/rand)
	return map[string]any{"path": path, "content": base64.StdEncoding.EncodeToString(buf), "encoding": "base64"}
}

// firstByte GETs a file of the bench site on a new connection and returns
// the time to its first response byte; size < 0 skips the length check.
func firstByte(b *testing.B, s *server, path string, size int) time.Duration {
	b.Helper()
	req, err := http.NewRequest("GET", "http://127.0.0.1:"+s.port+"/"+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Host = "bench.localhost:" + s.port
	var first time.Time
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotFirstResponseByte: func() { first = time.Now() },
	}))
	tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	start := time.Now()
	res, err := tr.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || (size >= 0 && n != int64(size)) {
		b.Fatalf("GET /%s: %d, %d bytes, %v", path, res.StatusCode, n, err)
	}
	return first.Sub(start)
}
