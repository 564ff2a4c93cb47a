package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

//go:generate sh docs/fetch-scalar.sh

// The directory holds a committed README.md, so the pattern always matches;
// standalone.js is there only after go generate.
//
//go:embed docs/scalar
var scalarFiles embed.FS

// docsInit starts Scalar. It is a file, not an inline script, so the page's
// Content-Security-Policy can allow scripts from 'self' only.
const docsInit = `Scalar.createApiReference('#app', {
  url: '/openapi.json',
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true }
});
`

var initHash = func() string {
	sum := sha256.Sum256([]byte(docsInit))
	return hex.EncodeToString(sum[:8])
}()

// docsCSP keeps the page to its own origin: no CDN, no fonts or calls to
// third parties. Scalar injects styles at run time, hence 'unsafe-inline'
// for styles (not scripts).
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>libra-deploy API reference</title>
<style>:root { --scalar-font: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; --scalar-font-code: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }</style>
</head>
<body>
<div id="app"></div>
<script src="/docs/scalar.js?v={{.Bundle}}"></script>
<script src="/docs/init.js?v={{.Init}}"></script>
</body>
</html>
`))

const docsMissingPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>libra-deploy API reference</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; line-height: 1.5">
<h1>API reference not built in</h1>
<p>This binary was built without the Scalar API reference bundle, so there is no interactive reference to show.
The OpenAPI description itself is at <a href="/openapi.json">/openapi.json</a>.</p>
<p>To include the reference, fetch the bundle and rebuild:</p>
<pre>make docs        # or: go generate ./api/...
go build ./cmd/libra-deploy</pre>
</body>
</html>
`

// docsAssets serves the docs page and the bundle from memory. The bundle is
// about 4.9 MB; it is gzipped once, on first request, and both forms are
// served with a content hash in the URL so browsers cache them for good.
type docsAssets struct {
	bundle []byte
	hash   string
	page   []byte

	gzOnce sync.Once
	gz     []byte
}

func newDocsAssets() *docsAssets {
	b, err := scalarFiles.ReadFile("docs/scalar/standalone.js")
	if err != nil || len(b) == 0 {
		return &docsAssets{}
	}
	sum := sha256.Sum256(b)
	d := &docsAssets{bundle: b, hash: hex.EncodeToString(sum[:8])}
	var page bytes.Buffer
	if err := docsPage.Execute(&page, struct{ Bundle, Init string }{d.hash, initHash}); err != nil {
		panic("docs page template: " + err.Error()) // static template and data
	}
	d.page = page.Bytes()
	return d
}

func (d *docsAssets) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if d.bundle == nil {
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_, _ = w.Write([]byte(docsMissingPage))
		return
	}
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(d.page)
}

func (d *docsAssets) serveInit(w http.ResponseWriter, r *http.Request) {
	d.serveScript(w, r, []byte(docsInit), nil, initHash)
}

func (d *docsAssets) serveBundle(w http.ResponseWriter, r *http.Request) {
	if d.bundle == nil {
		writeError(w, newError(http.StatusNotFound, libra.CodeNotFound, "the Scalar bundle is not built into this binary; run go generate ./api/...", nil))
		return
	}
	d.serveScript(w, r, d.bundle, d.gzipped, d.hash)
}

func (d *docsAssets) gzipped() []byte {
	d.gzOnce.Do(func() {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(d.bundle); err == nil && zw.Close() == nil {
			d.gz = buf.Bytes()
		}
	})
	return d.gz
}

func (d *docsAssets) serveScript(w http.ResponseWriter, r *http.Request, body []byte, gz func() []byte, etag string) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept-Encoding")
	if r.URL.Query().Get("v") != "" {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	tag := `"` + etag + `"`
	if gz != nil && acceptsGzip(r) {
		if z := gz(); z != nil {
			body = z
			tag = `"` + etag + `-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", tag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
