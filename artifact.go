package libra

import (
	"context"
	"io"
)

// ArtifactStore keeps blobs by the SHA-256 of their content ("sha256:<hex>"),
// so a file shared by many deployments, or sent again in a later one, is
// stored once. It holds the files clients send, the files builds produce,
// and the manifests that name them.
type ArtifactStore interface {
	// Put stores r's content and returns its digest and size. Storing content
	// that is already there is cheap and not an error.
	Put(ctx context.Context, r io.Reader) (digest string, size int64, err error)
	// Open returns the blob's content, or an error wrapping ErrNotFound.
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
}

// Manifest lists one deployment's published files by path (no leading slash).
type Manifest struct {
	Files map[string]ManifestFile `json:"files"`
	// NotFound is what the site host serves for a path with no file:
	// NotFoundSPA or NotFound404Page, decided when the project was built
	// (its wrangler config, or its framework). Empty: the site host decides
	// from the files alone.
	NotFound string `json:"notFound,omitempty"`
	// BuildLog is the build's full output, when there was a build: the
	// deployment's log in the database is capped, this is not. It is never
	// served as part of the site.
	BuildLog *ManifestFile `json:"buildLog,omitempty"`
	// Worker is the project's bundled Worker and its settings, kept when
	// the deployment went to a Cloudflare target so that a rollback can
	// publish it again without a build; nil otherwise.
	Worker *Worker `json:"worker,omitempty"`
}

// Values of Manifest.NotFound, as in wrangler's assets.not_found_handling.
const (
	NotFoundSPA     = "single-page-application"
	NotFound404Page = "404-page"
)

// ManifestFile is one published file.
type ManifestFile struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Gzip and Brotli are the file's content compressed once, at deploy
	// time, each stored as a blob of its own; nil when the type does not
	// compress, the file is small, or the encoding saves too little. The
	// site host serves them as they are and never compresses per request.
	Gzip   *Encoded `json:"gz,omitempty"`
	Brotli *Encoded `json:"br,omitempty"`
}

// Encoded is one compressed variant of a file: its blob's digest and size.
type Encoded struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}
