package libra

import (
	"context"
	"fmt"
)

// DeployTarget publishes a deployment somewhere other than this service's
// own site host (DEPLOY_TARGET): the deploy step stores the files and the
// manifest as always, then hands the manifest to the target, whose URL
// becomes the deployment's. A nil target means the local site host.
type DeployTarget interface {
	// Name names the target in logs and messages ("cloudflare").
	Name() string
	// Publish makes the manifest's files (and its Worker, if any) what the
	// project serves on the target and returns their URL. Errors of the
	// target's own making (outages, rate limits) are plain errors, retried
	// by the queue; a refusal that retrying cannot fix (bad credentials)
	// is Permanent with a message naming the target.
	Publish(ctx context.Context, req PublishRequest) (url string, err error)
}

// PublishRequest is one deployment (or one rollback) to publish.
type PublishRequest struct {
	ProjectID    string
	DeploymentID string
	Manifest     *Manifest
	// Artifacts holds every blob the manifest names.
	Artifacts ArtifactStore
	// Domains are the project's verified custom domains: a target that
	// can route them to the deployment does, and names the first in its URL.
	Domains []string
	// Log, when set, receives progress lines fit for the deployment's log.
	Log func(level, msg string)
}

// Worker is the server-side code a project ships beside its static files
// (wrangler's "main"), bundled at build time, and the settings it runs
// with. Module blobs are kept like the manifest's files.
type Worker struct {
	// MainModule names the entry module among Modules; "" for a Worker
	// that only serves its assets.
	MainModule string                  `json:"mainModule,omitempty"`
	Modules    map[string]ManifestFile `json:"modules,omitempty"`
	// CompatibilityDate and CompatibilityFlags are wrangler's
	// compatibility_date and compatibility_flags.
	CompatibilityDate  string   `json:"compatibilityDate,omitempty"`
	CompatibilityFlags []string `json:"compatibilityFlags,omitempty"`
	// HTMLHandling is wrangler's assets.html_handling ("" = the default).
	HTMLHandling string `json:"htmlHandling,omitempty"`
}

func (w *Worker) check() error {
	if w.MainModule != "" {
		if _, ok := w.Modules[w.MainModule]; !ok {
			return fmt.Errorf("worker main module %.80q is not among its modules", w.MainModule)
		}
	}
	for name, f := range w.Modules {
		if err := CheckPath(name); err != nil {
			return fmt.Errorf("worker module %.80q: %w", name, err)
		}
		if err := CheckDigest(f.Digest); err != nil {
			return fmt.Errorf("worker module %.80q: %w", name, err)
		}
	}
	return nil
}
