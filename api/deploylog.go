package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	libra "github.com/libra-deploy/libra-deploy"
)

// deployLogOutput streams the log: a build log may be tens of megabytes,
// and holding one per request in memory let a few slow readers take the
// process's memory (issue 8, finding 7).
type deployLogOutput struct {
	Body func(huma.Context)
}

func (s *server) deployLog(ctx context.Context, in *statusInput) (*deployLogOutput, error) {
	blob, err := s.buildLogOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	rc, err := s.cfg.Artifacts.Open(ctx, blob.Digest)
	if err != nil {
		return nil, clientError(ctx, "open build log", fmt.Errorf("build log of %s: %w", in.ID, err))
	}
	return &deployLogOutput{Body: func(hctx huma.Context) {
		defer rc.Close()
		r, w := humago.Unwrap(hctx)
		serveLog(w, r, blob, rc)
	}}, nil
}

// buildLogOf finds the build log of a deployment of the token's org. Another
// org's deployment is "not found", like one that does not exist, so that a
// token cannot learn which ids are real.
func (s *server) buildLogOf(ctx context.Context, id string) (*libra.ManifestFile, error) {
	d, err := s.deploymentOfOrg(ctx, id)
	if err != nil {
		return nil, err
	}
	noLog := newError(http.StatusNotFound, libra.CodeDeploymentNotFound, "this deployment has no full build log: it had no build, or did not publish (its status's logs hold what it printed)", nil)
	if d.Manifest == "" {
		return nil, noLog
	}
	m, err := libra.LoadManifest(ctx, s.cfg.Artifacts, d.Manifest)
	if err != nil {
		return nil, clientError(ctx, "load manifest", fmt.Errorf("manifest of %s: %w", id, err))
	}
	if m.BuildLog == nil {
		return nil, noLog
	}
	return m.BuildLog, nil
}

// serveLog copies the blob to the client as it reads it. A seekable blob
// (the local store's file) goes through http.ServeContent, which answers
// Range requests and sends the file with sendfile; its digest is a strong
// ETag, since a blob never changes.
func serveLog(w http.ResponseWriter, r *http.Request, blob *libra.ManifestFile, rc io.Reader) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("ETag", strconv.Quote(blob.Digest))
	if rs, ok := rc.(io.ReadSeeker); ok {
		http.ServeContent(&rangeErrors{ResponseWriter: w, size: blob.Size}, r, "", time.Time{}, rs)
		return
	}
	h.Set("Content-Length", strconv.FormatInt(blob.Size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		// The status is sent: a failure now can only cut the body short,
		// which the client sees against Content-Length.
		_, _ = io.Copy(w, rc)
	}
}

// rangeErrors puts http.ServeContent's one error of its own, 416 for a
// Range past the end, in the API's error format; everything else passes.
type rangeErrors struct {
	http.ResponseWriter
	size   int64
	failed bool
}

func (w *rangeErrors) WriteHeader(code int) {
	if code != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.failed = true
	// ServeContent has set Content-Range: bytes */size already.
	writeError(w.ResponseWriter, newError(code, CodeRangeNotSatisfiable, "the range asks for bytes past the end of the log",
		map[string]any{"size": w.size}))
}

// Write drops ServeContent's plain-text body of a 416.
func (w *rangeErrors) Write(p []byte) (int, error) {
	if w.failed {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile for the log's body.
func (w *rangeErrors) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok && !w.failed {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}
