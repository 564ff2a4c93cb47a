package main_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

// Compression end to end: the deploy step compresses text files once, with
// gzip and brotli, and the site host sends whichever the client accepts,
// byte for byte the original once decoded.

// generatedJS is a script of about n bytes that compresses the way real
// bundles do: repetitive in form, varied in names and numbers.
func generatedJS(n int) string {
	rng := rand.New(rand.NewPCG(7, 11))
	words := []string{"render", "state", "props", "effect", "memo", "value", "index", "node", "child", "event", "handler", "config"}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		a, c := words[rng.IntN(len(words))], words[rng.IntN(len(words))]
		fmt.Fprintf(&b, "export function %s%d(%s, %s) {\n  const r = %s.%s ?? %d;\n  if (r > %d) { return %s(r - %d); }\n  return [%s, r, %q];\n}\n",
			a, i, a, c, a, c, rng.IntN(1000), rng.IntN(500), c, rng.IntN(9)+1, a, fmt.Sprintf("%s-%x", c, rng.Uint32()))
	}
	return b.String()
}

func TestCompressionEndToEnd(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "zipped")

	js := generatedJS(200 << 10)
	var css strings.Builder
	for i := 0; css.Len() < 30<<10; i++ {
		fmt.Fprintf(&css, ".card-%d { margin: %dpx auto; color: #%06x; display: flex; }\n", i, i%17, i*2654435761%0xffffff)
	}
	var html strings.Builder
	html.WriteString("<!doctype html><html><head><link rel=stylesheet href=/style.css></head><body>\n")
	for i := 0; html.Len() < 20<<10; i++ {
		fmt.Fprintf(&html, "<section class=card-%d><h2>Section %d</h2><p>Some words about section %d of the page.</p></section>\n", i, i, i)
	}
	html.WriteString("<script type=module src=/app.js></script></body></html>\n")
	// A PNG large enough to compress if it were text; it never is encoded.
	png := append([]byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, bytes.Repeat([]byte("IDAT"), 1000)...)

	files := map[string]string{"app.js": js, "style.css": css.String(), "index.html": html.String()}
	list := []map[string]any{{"path": "logo.png", "content": base64.StdEncoding.EncodeToString(png), "encoding": "base64"}}
	for p, c := range files {
		list = append(list, map[string]any{"path": p, "content": c})
	}
	id := s.deployWait(tok, map[string]any{"projectId": "zipped", "orgId": "acme", "userId": "user-acme", "initFiles": list}, "completed")
	logs := string(s.do("GET", "/deploy-status?id="+id, nil).body)
	if !strings.Contains(logs, "compressed 3 files") {
		t.Errorf("the deploy log does not report the compression: %s", logs)
	}

	// A client that takes the bytes as sent, whatever they are.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	fetch := func(method, path, acceptEncoding string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, s.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = s.siteHost(id)
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	var variants []string // the compressed bodies, which are blobs in the store
	paths := map[string]string{"/app.js": "app.js", "/style.css": "style.css", "/": "index.html"}
	for path, name := range paths {
		want := files[name]
		etags := map[string]bool{}
		sizes := map[string]int{}
		for _, enc := range []string{"br", "gzip", ""} {
			resp, body := fetch("GET", path, enc)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != enc {
				t.Errorf("%s, Accept-Encoding %q: %d, Content-Encoding %q", path, enc, resp.StatusCode, resp.Header.Get("Content-Encoding"))
				continue
			}
			if resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("%s, %q: Vary %q", path, enc, resp.Header.Get("Vary"))
			}
			if resp.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
				t.Errorf("%s, %q: Content-Length %q for %d bytes", path, enc, resp.Header.Get("Content-Length"), len(body))
			}
			got := decodeBody(t, enc, body)
			if got != want {
				t.Errorf("%s, %q: %d bytes decoded, not the %d deployed", path, enc, len(got), len(want))
			}
			etags[resp.Header.Get("Etag")] = true
			sizes[enc] = len(body)
			if enc != "" {
				variants = append(variants, string(body))
			}
			head, hbody := fetch("HEAD", path, enc)
			if head.Header.Get("Content-Length") != fmt.Sprint(len(body)) || head.Header.Get("Content-Encoding") != enc || len(hbody) != 0 {
				t.Errorf("HEAD %s, %q: Content-Length %q, Content-Encoding %q", path, enc, head.Header.Get("Content-Length"), head.Header.Get("Content-Encoding"))
			}
		}
		if len(etags) != 3 {
			t.Errorf("%s: %d distinct ETags for three encodings", path, len(etags))
		}
		t.Logf("%s: %d bytes, gzip %d, br %d", path, sizes[""], sizes["gzip"], sizes["br"])
		if sizes["gzip"] == 0 || sizes["gzip"] > sizes[""]/2 || sizes["br"] == 0 || sizes["br"] > sizes["gzip"] {
			t.Errorf("%s: sizes %v; want br <= gzip <= half the original", path, sizes)
		}
	}

	// An image is never encoded, whatever the client accepts.
	for _, enc := range []string{"br", "gzip", "br, gzip, *", ""} {
		resp, body := fetch("GET", "/logo.png", enc)
		if resp.StatusCode != 200 || !bytes.Equal(body, png) || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Vary") != "" {
			t.Errorf("logo.png, %q: %d, %d bytes, Content-Encoding %q, Vary %q", enc, resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
		}
	}
	// A range is of the file itself.
	resp, body := fetch("GET", "/app.js", "br, gzip", "Range", "bytes=0-99")
	if resp.StatusCode != 206 || string(body) != js[:100] || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("range: %d, encoding %q, %q", resp.StatusCode, resp.Header.Get("Content-Encoding"), body)
	}

	// The variants are blobs that GC keeps, as long as their deployment is
	// kept, while it removes what nothing references.
	for i, v := range variants {
		if !exists(blobFile(s, v)) {
			t.Fatalf("variant %d (%d bytes) is not a stored blob", i, len(v))
		}
	}
	orphan := blobFile(s, "nothing refers to this")
	if err := os.MkdirAll(filepath.Dir(orphan), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte("nothing refers to this"), 0o444); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour)
	err := filepath.WalkDir(filepath.Join(s.dataDir, "artifacts", "sha256"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	out := s.admin("gc")
	if exists(orphan) {
		t.Fatalf("gc kept an unreferenced blob; the test proves nothing:\n%s", out)
	}
	for i, v := range variants {
		if !exists(blobFile(s, v)) {
			t.Errorf("gc removed variant %d", i)
		}
	}
	for _, enc := range []string{"br", "gzip"} {
		resp, body := fetch("GET", "/app.js", enc)
		if resp.StatusCode != 200 || decodeBody(t, resp.Header.Get("Content-Encoding"), body) != js {
			t.Errorf("after gc, %q: %d, encoding %q", enc, resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
	}
}

// decodeBody undoes a Content-Encoding.
func decodeBody(t *testing.T, encoding string, body []byte) string {
	t.Helper()
	var r io.Reader
	switch encoding {
	case "":
		return string(body)
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	default:
		t.Fatalf("unexpected Content-Encoding %q", encoding)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", encoding, err)
	}
	return string(b)
}
