package sitehost

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	libra "github.com/libra-deploy/libra-deploy"
)

// encodedFile is one file of publishEncoded: its content and which
// variants the manifest names.
type encodedFile struct {
	content  string
	gzip, br bool
}

// publishEncoded publishes files as the deploy step does, with the variants
// each asks for stored as blobs and named in the manifest.
func (e *env) publishEncoded(files map[string]encodedFile) (id string) {
	e.t.Helper()
	ctx := context.Background()
	put := func(b []byte) (string, int64) {
		d, n, err := e.store.Put(ctx, bytes.NewReader(b))
		if err != nil {
			e.t.Fatal(err)
		}
		return d, n
	}
	m := libra.Manifest{Files: map[string]libra.ManifestFile{}}
	for p, f := range files {
		d, n := put([]byte(f.content))
		mf := libra.ManifestFile{Digest: d, Size: n}
		if f.gzip {
			d, n := put(gzipBytes(f.content))
			mf.Gzip = &libra.Encoded{Digest: d, Size: n}
		}
		if f.br {
			d, n := put(brotliBytes(f.content))
			mf.Brotli = &libra.Encoded{Digest: d, Size: n}
		}
		m.Files[p] = mf
	}
	man, err := libra.PutManifest(ctx, e.store, m)
	if err != nil {
		e.t.Fatal(err)
	}
	id = libra.NewSiteLabel("")
	e.res.set(func(r *memResolver) { r.deployments[id] = man })
	return id
}

func gzipBytes(s string) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return b.Bytes()
}

func brotliBytes(s string) []byte {
	var b bytes.Buffer
	w := brotli.NewWriterLevel(&b, 9)
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return b.Bytes()
}

// decode undoes r's Content-Encoding.
func decode(t *testing.T, r resp) string {
	t.Helper()
	var rd io.Reader
	switch ce := r.header.Get("Content-Encoding"); ce {
	case "":
		return r.body
	case "br":
		rd = brotli.NewReader(strings.NewReader(r.body))
	case "gzip":
		zr, err := gzip.NewReader(strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		rd = zr
	default:
		t.Fatalf("Content-Encoding %q", ce)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("decode %s: %v", r.header.Get("Content-Encoding"), err)
	}
	return string(b)
}

func TestPrecompressedVariants(t *testing.T) {
	e := newEnv(t, Config{})
	big := strings.Repeat("export function hello(name) { return `hello ${name}`; }\n", 300)
	page := "<!doctype html>" + strings.Repeat("<p>some words for the page</p>\n", 100)
	id := e.publishEncoded(map[string]encodedFile{
		"app.js":     {content: big, gzip: true, br: true},
		"index.html": {content: page, gzip: true}, // brotli saved too little, say
		"img.png":    {content: strings.Repeat("p", 4000)},
		"notes.txt":  {content: strings.Repeat("not worth it ", 100)},
		"small.js":   {content: "x()"},
	})
	host := id + ".localhost"

	plain := e.get(host, "/app.js")
	if plain.status != 200 || plain.body != big || plain.header.Get("Content-Encoding") != "" {
		t.Fatalf("identity: %d, encoding %q, %d bytes", plain.status, plain.header.Get("Content-Encoding"), len(plain.body))
	}
	if plain.header.Get("Vary") != "Accept-Encoding" || plain.header.Get("Content-Length") != fmt.Sprint(len(big)) {
		t.Errorf("identity: Vary %q, Content-Length %q", plain.header.Get("Vary"), plain.header.Get("Content-Length"))
	}

	etags := map[string]string{"": plain.header.Get("Etag")}
	tests := []struct{ accept, want string }{
		{"br", "br"},
		{"gzip, deflate, br, zstd", "br"},
		{"gzip;q=1.0, br;q=0.5", "br"},
		{"*", "br"},
		{"gzip", "gzip"},
		{"x-gzip", "gzip"},
		{"br;q=0, gzip", "gzip"},
		{"*, br;q=0", "gzip"},
		{"gzip;q=0", ""},
		{"br;q=0, gzip;q=0", ""},
		{"*;q=0", ""},
		{"identity", ""},
		{"deflate", ""},
	}
	for _, tt := range tests {
		r := e.do(http.MethodGet, host, "/app.js", map[string]string{"Accept-Encoding": tt.accept})
		if got := r.header.Get("Content-Encoding"); r.status != 200 || got != tt.want {
			t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, want %q", tt.accept, r.status, got, tt.want)
			continue
		}
		if got := decode(t, r); got != big {
			t.Errorf("Accept-Encoding %q: decoded %d bytes, not the original", tt.accept, len(got))
		}
		if r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) {
			t.Errorf("Accept-Encoding %q: Content-Length %q for %d bytes", tt.accept, r.header.Get("Content-Length"), len(r.body))
		}
		if r.header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q", tt.accept, r.header.Get("Vary"))
		}
		if tt.want != "" && len(r.body) >= len(big)/4 {
			t.Errorf("%s: %d bytes of %d", tt.want, len(r.body), len(big))
		}
		if first, ok := etags[tt.want]; ok && first != r.header.Get("Etag") {
			t.Errorf("Accept-Encoding %q: ETag %s, earlier %s", tt.accept, r.header.Get("Etag"), first)
		}
		etags[tt.want] = r.header.Get("Etag")
	}
	if etags[""] == etags["br"] || etags[""] == etags["gzip"] || etags["br"] == etags["gzip"] {
		t.Errorf("ETags not distinct per encoding: %v", etags)
	}
	// Any of the file's validators revalidates, and a 304 describes no body.
	for enc, tag := range etags {
		r := e.do(http.MethodGet, host, "/app.js", map[string]string{"Accept-Encoding": "br", "If-None-Match": tag})
		if r.status != 304 || r.header.Get("Content-Encoding") != "" || r.body != "" {
			t.Errorf("If-None-Match %s (%q): %d, encoding %q", tag, enc, r.status, r.header.Get("Content-Encoding"))
		}
	}

	// HEAD describes the representation GET would send.
	for _, enc := range []string{"br", "gzip", ""} {
		r := e.do(http.MethodHead, host, "/app.js", map[string]string{"Accept-Encoding": enc})
		get := e.do(http.MethodGet, host, "/app.js", map[string]string{"Accept-Encoding": enc})
		if r.status != 200 || r.body != "" || r.header.Get("Content-Encoding") != enc ||
			r.header.Get("Content-Length") != fmt.Sprint(len(get.body)) || r.header.Get("Etag") != etags[enc] {
			t.Errorf("HEAD %q: %d, encoding %q, Content-Length %q (GET sends %d), ETag %s",
				enc, r.status, r.header.Get("Content-Encoding"), r.header.Get("Content-Length"), len(get.body), r.header.Get("Etag"))
		}
	}

	// A range is of the identity representation, whatever is accepted.
	for _, enc := range []string{"br", "gzip", ""} {
		r := e.do(http.MethodGet, host, "/app.js", map[string]string{"Accept-Encoding": enc, "Range": "bytes=7-14"})
		if r.status != 206 || r.body != big[7:15] || r.header.Get("Content-Encoding") != "" || r.header.Get("Etag") != etags[""] {
			t.Errorf("range, Accept-Encoding %q: %d %q, encoding %q, ETag %s", enc, r.status, r.body, r.header.Get("Content-Encoding"), r.header.Get("Etag"))
		}
	}

	// A file with only a gzip variant: gzip, or identity for br-only clients.
	if r := e.do(http.MethodGet, host, "/", map[string]string{"Accept-Encoding": "gzip, br"}); r.header.Get("Content-Encoding") != "gzip" || decode(t, r) != page {
		t.Errorf("gzip-only page with gzip, br: encoding %q", r.header.Get("Content-Encoding"))
	}
	if r := e.do(http.MethodGet, host, "/", map[string]string{"Accept-Encoding": "br"}); r.header.Get("Content-Encoding") != "" || r.body != page || r.header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("gzip-only page with br: encoding %q, Vary %q", r.header.Get("Content-Encoding"), r.header.Get("Vary"))
	}
	// No variant: sent as it is, and never compressed here, not even a
	// compressible type (the deploy step found it not worth it).
	for _, p := range []string{"/img.png", "/notes.txt", "/small.js"} {
		r := e.do(http.MethodGet, host, p, map[string]string{"Accept-Encoding": "br, gzip"})
		if r.status != 200 || r.header.Get("Content-Encoding") != "" || r.header.Get("Vary") != "" {
			t.Errorf("%s: %d, Content-Encoding %q, Vary %q", p, r.status, r.header.Get("Content-Encoding"), r.header.Get("Vary"))
		}
	}

	// The variants live in the same cache as the files.
	s, err := e.host.lookup(context.Background(), host)
	if err != nil || s == nil {
		t.Fatalf("lookup: %v", err)
	}
	f := s.routes["app.js"]
	if f.blob.Load() == nil || f.br.blob.Load() == nil || f.gz.blob.Load() == nil {
		t.Error("app.js and its variants are not all cached after requests for each")
	}
	if f.br.blob.Load() != nil && len(f.br.blob.Load().gzip) != 0 {
		t.Error("a variant was gzipped on cache fill")
	}
}

// TestVariantFallsBackToIdentity: a variant's blob missing from the store
// costs the client its compression, not the file.
func TestVariantFallsBackToIdentity(t *testing.T) {
	e := newEnv(t, Config{})
	big := strings.Repeat("body { color: teal; margin: 0 auto; }\n", 200)
	id := e.publishEncoded(map[string]encodedFile{"style.css": {content: big, gzip: true, br: true}})
	d, _, _ := e.store.Put(context.Background(), bytes.NewReader(brotliBytes(big)))
	p, err := e.store.Path(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodGet, id+".localhost", "/style.css", map[string]string{"Accept-Encoding": "br"})
	if r.status != 200 || r.body != big || r.header.Get("Content-Encoding") != "" ||
		r.header.Get("Content-Length") != fmt.Sprint(len(big)) || strings.HasSuffix(r.header.Get("Etag"), `-br"`) {
		t.Errorf("missing br blob: %d, encoding %q, Content-Length %q, ETag %s",
			r.status, r.header.Get("Content-Encoding"), r.header.Get("Content-Length"), r.header.Get("Etag"))
	}
	// Not tried again: gzip is the next best.
	if r := e.do(http.MethodGet, id+".localhost", "/style.css", map[string]string{"Accept-Encoding": "br, gzip"}); r.header.Get("Content-Encoding") != "gzip" || decode(t, r) != big {
		t.Errorf("br, gzip after a missing br: encoding %q", r.header.Get("Content-Encoding"))
	}
}

// TestLargeVariantIsStreamed: a variant too large for the memory cache is
// sent from the store, still encoded.
func TestLargeVariantIsStreamed(t *testing.T) {
	e := newEnv(t, Config{CacheBytes: 16 << 10}) // items up to 2 KiB
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"}
	var sb strings.Builder
	for sb.Len() < 40<<10 {
		sb.WriteString(words[rng.IntN(len(words))])
		sb.WriteByte(" \n"[rng.IntN(2)])
	}
	big := sb.String()
	if len(brotliBytes(big)) <= 2<<10 {
		t.Fatal("test content compresses too well to exceed the item limit")
	}
	id := e.publishEncoded(map[string]encodedFile{"words.txt": {content: big, gzip: true, br: true}})
	host := id + ".localhost"
	for _, enc := range []string{"br", "gzip", ""} {
		r := e.do(http.MethodGet, host, "/words.txt", map[string]string{"Accept-Encoding": enc})
		if r.status != 200 || r.header.Get("Content-Encoding") != enc || r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) {
			t.Errorf("%q: %d, encoding %q, Content-Length %q for %d bytes", enc, r.status, r.header.Get("Content-Encoding"), r.header.Get("Content-Length"), len(r.body))
			continue
		}
		if decode(t, r) != big {
			t.Errorf("%q: decoded body is not the original", enc)
		}
		head := e.do(http.MethodHead, host, "/words.txt", map[string]string{"Accept-Encoding": enc})
		if head.header.Get("Content-Length") != r.header.Get("Content-Length") || head.header.Get("Content-Encoding") != enc || head.body != "" {
			t.Errorf("HEAD %q: Content-Length %q, encoding %q", enc, head.header.Get("Content-Length"), head.header.Get("Content-Encoding"))
		}
	}
	if items, used := e.host.blobs.stats(); used > 16<<10 {
		t.Errorf("cache holds %d items of %d bytes", items, used)
	}
}
