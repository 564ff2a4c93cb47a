package sitehost

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
)

// smallIndex is the 29-byte page of the serving figures in DESIGN.md.
const smallIndex = "<html><body>hi</body></html>\n"

// benchHost publishes one small site on a real store and returns the host
// name that serves it.
func benchHost(b *testing.B) (*Host, string) {
	b.Helper()
	store, err := artifactfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	d, n, err := store.Put(ctx, strings.NewReader(smallIndex))
	if err != nil {
		b.Fatal(err)
	}
	man, err := libra.PutManifest(ctx, store, libra.Manifest{Files: map[string]libra.ManifestFile{"index.html": {Digest: d, Size: n}}})
	if err != nil {
		b.Fatal(err)
	}
	res := newMemResolver()
	id := libra.NewSiteLabel("")
	res.deployments[id] = man
	h := New(Config{Resolver: res, Artifacts: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return h, id + ".localhost:3008"
}

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// reused between requests like net/http's own is per connection.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkServeSmallFile serves the 29-byte index.html in parallel: through
// the handler alone (its own cost), and over a real loopback listener next
// to a bare net/http handler writing the same bytes from memory, the
// ceiling for anything built on net/http. The Go client shares the CPU in
// the listener runs, so compare those two with each other, not with wrk
// figures.
func BenchmarkServeSmallFile(b *testing.B) {
	b.Run("handler", func(b *testing.B) {
		h, host := benchHost(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				w.n = 0
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK || w.n != len(smallIndex) {
					b.Fatalf("status %d, %d bytes", w.status, w.n)
				}
			}
		})
		reportRate(b)
	})

	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(smallIndex))
	})
	for _, tc := range []struct {
		name    string
		handler func(b *testing.B) (http.Handler, string)
	}{
		{"http/sitehost", func(b *testing.B) (http.Handler, string) { return benchHost(b) }},
		{"http/bare-net-http", func(*testing.B) (http.Handler, string) { return bare, "x.localhost" }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			handler, host := tc.handler(b)
			srv := httptest.NewServer(handler)
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
				req.Host = host
				buf := make([]byte, 512)
				for pb.Next() {
					res, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.ReadFull(res.Body, buf[:len(smallIndex)])
					res.Body.Close()
					if res.StatusCode != http.StatusOK || n != len(smallIndex) {
						b.Fatalf("status %d, %d bytes", res.StatusCode, n)
					}
				}
			})
			reportRate(b)
		})
	}
}
