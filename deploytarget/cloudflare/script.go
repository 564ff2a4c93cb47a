package cloudflare

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path"
	"sort"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// scriptMetadata is the "metadata" part of a Worker upload.
type scriptMetadata struct {
	MainModule         string       `json:"main_module,omitempty"`
	CompatibilityDate  string       `json:"compatibility_date,omitempty"`
	CompatibilityFlags []string     `json:"compatibility_flags,omitempty"`
	Assets             scriptAssets `json:"assets"`
}

type scriptAssets struct {
	JWT    string       `json:"jwt"`
	Config assetsConfig `json:"config"`
}

type assetsConfig struct {
	Headers          string `json:"_headers,omitempty"`
	Redirects        string `json:"_redirects,omitempty"`
	HTMLHandling     string `json:"html_handling,omitempty"`
	NotFoundHandling string `json:"not_found_handling,omitempty"`
}

// uploadScript puts the Worker: its modules (none for an assets-only
// Worker) and its metadata, which redeems the assets' completion token.
func (t *Target) uploadScript(ctx context.Context, script, completion string, s *assetSet, req libra.PublishRequest) error {
	meta, modules, err := workerParts(ctx, req, s, completion)
	if err != nil {
		return err
	}
	body := func() (io.Reader, string, error) { return scriptBody(meta, modules) }
	if _, err := t.call(ctx, request{method: http.MethodPut, path: t.scriptPath(script), body: body}, nil); err != nil {
		return classify("upload the Worker", err)
	}
	return nil
}

// workerParts reads the manifest's Worker (if any) into the upload's
// metadata and modules.
func workerParts(ctx context.Context, req libra.PublishRequest, s *assetSet, completion string) (scriptMetadata, map[string][]byte, error) {
	m := req.Manifest
	meta := scriptMetadata{
		// A date is required; an assets-only Worker runs no code, so
		// the day it was published serves.
		CompatibilityDate: time.Now().UTC().Format("2006-01-02"),
		Assets: scriptAssets{JWT: completion, Config: assetsConfig{
			Headers: s.headers, Redirects: s.redirects, NotFoundHandling: m.NotFound,
		}},
	}
	w := m.Worker
	if w == nil {
		return meta, nil, nil
	}
	meta.Assets.Config.HTMLHandling = w.HTMLHandling
	if w.CompatibilityDate != "" {
		meta.CompatibilityDate = w.CompatibilityDate
	}
	meta.CompatibilityFlags = w.CompatibilityFlags
	meta.MainModule = w.MainModule
	modules := map[string][]byte{}
	for name, f := range w.Modules {
		b, err := readBlob(ctx, req.Artifacts, f.Digest)
		if err != nil {
			return meta, nil, fmt.Errorf("read Worker module %s: %w", name, err)
		}
		modules[name] = b
	}
	return meta, modules, nil
}

func scriptBody(meta scriptMetadata, modules map[string][]byte) (io.Reader, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, "", fmt.Errorf("encode Worker metadata: %w", err)
	}
	if err := writePart(w, "metadata", "", "application/json", mb); err != nil {
		return nil, "", err
	}
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writePart(w, name, name, moduleType(name), modules[name]); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", fmt.Errorf("encode Worker upload: %w", err)
	}
	return &buf, w.FormDataContentType(), nil
}

func writePart(w *multipart.Writer, name, filename, ctype string, b []byte) error {
	hdr := textproto.MIMEHeader{}
	disp := fmt.Sprintf("form-data; name=%q", name)
	if filename != "" {
		disp += fmt.Sprintf("; filename=%q", filename)
	}
	hdr.Set("Content-Disposition", disp)
	hdr.Set("Content-Type", ctype)
	part, err := w.CreatePart(hdr)
	if err != nil {
		return fmt.Errorf("encode Worker upload: %w", err)
	}
	_, err = part.Write(b)
	return err
}

// moduleType is the part type that tells Cloudflare what kind of module
// a file is.
func moduleType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs":
		return "application/javascript+module"
	case ".wasm":
		return "application/wasm"
	case ".map":
		return "application/source-map"
	default:
		return "text/plain"
	}
}
