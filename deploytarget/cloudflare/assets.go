package cloudflare

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path"
	"sort"

	libra "github.com/libra-deploy/libra-deploy"
)

// manifestEntry is one asset as the upload session names it.
type manifestEntry struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
}

// assetSet is a deployment's files as Cloudflare sees them.
type assetSet struct {
	// manifest maps "/path" to the asset's hash and size.
	manifest map[string]manifestEntry
	// byHash finds an asset's blob (and its path, for its type) by hash.
	byHash map[string]assetBlob
	// headers and redirects are the _headers and _redirects files, which
	// go into the Worker's assets config rather than being served.
	headers, redirects string
	artifacts          libra.ArtifactStore
}

type assetBlob struct {
	path, digest string
}

// Cloudflare's limit per asset.
const maxAssetBytes = 25 << 20

// readAssets hashes every file of the manifest as wrangler does.
func readAssets(ctx context.Context, store libra.ArtifactStore, m *libra.Manifest) (*assetSet, error) {
	s := &assetSet{manifest: map[string]manifestEntry{}, byHash: map[string]assetBlob{}, artifacts: store}
	for p, f := range m.Files {
		if f.Size > maxAssetBytes {
			return nil, libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
				"%s is %d MiB: Cloudflare serves assets of at most 25 MiB", p, f.Size>>20))
		}
		b, err := readBlob(ctx, store, f.Digest)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		switch p {
		case "_headers":
			s.headers = string(b)
			continue
		case "_redirects":
			s.redirects = string(b)
			continue
		}
		h := AssetHash(b, p)
		s.manifest["/"+p] = manifestEntry{Hash: h, Size: int64(len(b))}
		s.byHash[h] = assetBlob{path: p, digest: f.Digest}
	}
	return s, nil
}

func readBlob(ctx context.Context, store libra.ArtifactStore, digest string) ([]byte, error) {
	rc, err := store.Open(ctx, digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxAssetBytes+1))
}

type uploadSession struct {
	JWT     string     `json:"jwt"`
	Buckets [][]string `json:"buckets"`
}

// maxSessions bounds how often an expired upload token is replaced by a
// new session before the deployment is handed back to the queue.
const maxSessions = 4

// uploadAssets runs the upload session to its completion token and returns
// it with the number of files sent. When the session's token expires
// mid-upload (Cloudflare answers 401), a new session is opened with the
// same manifest: Cloudflare answers it with only the buckets still
// missing, so the upload resumes where it stopped.
func (t *Target) uploadAssets(ctx context.Context, script string, s *assetSet) (string, int, error) {
	sent := 0
	for range maxSessions {
		var sess uploadSession
		_, err := t.call(ctx, request{method: http.MethodPost, path: t.scriptPath(script) + "/assets-upload-session",
			body: jsonBody(map[string]any{"manifest": s.manifest})}, &sess)
		if err != nil {
			return "", sent, classify("open an assets upload session", err)
		}
		if len(sess.Buckets) == 0 {
			return sess.JWT, sent, nil // Cloudflare has every asset
		}
		completion, n, expired, err := t.uploadBuckets(ctx, sess, s)
		sent += n
		if err != nil {
			return "", sent, err
		}
		if !expired {
			return completion, sent, nil
		}
	}
	return "", sent, libra.Errorf(libra.CodeUnavailable, "Cloudflare's upload token expired %d times during one upload", maxSessions)
}

// uploadBuckets sends the session's buckets in turn. expired reports a
// token Cloudflare no longer takes: the caller opens a new session.
func (t *Target) uploadBuckets(ctx context.Context, sess uploadSession, s *assetSet) (completion string, sent int, expired bool, err error) {
	for _, bucket := range sess.Buckets {
		var res struct {
			JWT string `json:"jwt"`
		}
		status, err := t.call(ctx, request{method: http.MethodPost,
			path:   "/accounts/" + t.cfg.AccountID + "/workers/assets/upload?base64=true",
			bearer: sess.JWT, body: s.bucketBody(ctx, bucket)}, &res)
		if status == http.StatusUnauthorized {
			return "", sent, true, nil
		}
		if err != nil {
			return "", sent, false, classify("upload assets", err)
		}
		sent += len(bucket)
		if status == http.StatusCreated {
			completion = res.JWT
		}
	}
	if completion == "" {
		return "", sent, false, libra.Errorf(libra.CodeUnavailable, "Cloudflare took every bucket but sent no completion token")
	}
	return completion, sent, false, nil
}

// bucketBody is one upload request: a part per file, named by its hash,
// holding its base64 and typed as the file.
func (s *assetSet) bucketBody(ctx context.Context, bucket []string) func() (io.Reader, string, error) {
	return func() (io.Reader, string, error) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		sorted := append([]string(nil), bucket...)
		sort.Strings(sorted)
		for _, h := range sorted {
			if err := s.writePart(ctx, w, h); err != nil {
				return nil, "", err
			}
		}
		if err := w.Close(); err != nil {
			return nil, "", fmt.Errorf("encode assets upload: %w", err)
		}
		return &buf, w.FormDataContentType(), nil
	}
}

func (s *assetSet) writePart(ctx context.Context, w *multipart.Writer, hash string) error {
	a, ok := s.byHash[hash]
	if !ok {
		return libra.Errorf(libra.CodeUnavailable, "Cloudflare asked for an asset (%.40s) that is not in the manifest", hash)
	}
	b, err := readBlob(ctx, s.artifacts, a.digest)
	if err != nil {
		return fmt.Errorf("read %s: %w", a.path, err)
	}
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, hash, hash))
	hdr.Set("Content-Type", contentType(a.path))
	part, err := w.CreatePart(hdr)
	if err != nil {
		return fmt.Errorf("encode assets upload: %w", err)
	}
	_, err = io.WriteString(part, base64.StdEncoding.EncodeToString(b))
	return err
}

// contentType is the type Cloudflare will serve the asset with.
func contentType(p string) string {
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}
