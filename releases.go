package libra

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Releases: what a project has published, which deployment its production
// alias serves, and which deployments (and so which artifacts) are kept.
//
// A project's alias follows "newest wins": a deployment that publishes moves
// the alias only when it is newer than every deployment the project published
// before. A rollback points the alias at an older completed deployment without
// lowering that mark, so a deployment that was already older than the one
// rolled away from never takes the alias back, while the next newer one does.

// DefaultRetention is how many of each project's newest deployments are kept
// when no retention is configured.
const DefaultRetention = 20

// DeploymentInfo is a deployment as a list shows it: no input, no steps.
type DeploymentInfo struct {
	ID         string
	ProjectID  string
	OrgID      string
	Status     Status
	Error      string
	URL        string
	Manifest   string
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	// Production is set for the deployment its project's alias serves.
	Production bool
	// Target and Alias are the deployment's (targets.go).
	Target Target
	Alias  string
}

// DeploymentPage is one page of a project's deployments, newest first.
type DeploymentPage struct {
	Deployments []DeploymentInfo
	// Next is the cursor of the following page, "" on the last one.
	Next string
	// Total counts all of the project's retained deployments.
	Total int
}

// Release is where a project's production alias stands.
type Release struct {
	// Production is the deployment the alias serves; nil before the
	// project's first successful deployment.
	Production *DeploymentInfo
	// Pinned is set when a rollback made Production older than the newest
	// deployment the project published: the next newer deployment that
	// publishes moves the alias forward again.
	Pinned bool
}

// Domain is a custom domain attached to a project. It is pending until a
// DNS check finds the project's verification token at
// _libra-deploy.{domain}; only a verified domain is served and gets a
// certificate.
type Domain struct {
	Domain    string
	ProjectID string
	CreatedAt time.Time
	// VerifiedAt is when ownership was proved; nil while pending.
	VerifiedAt *time.Time
	// CheckedAt is when the last DNS check ran; nil before the first.
	CheckedAt *time.Time
	// CheckError says why the last check did not verify the domain.
	CheckError string
}

// PendingDomain is a domain waiting for verification, with the token its
// TXT record must hold.
type PendingDomain struct {
	Domain    string
	ProjectID string
	Token     string
}

// DomainCheck is the outcome of one DNS check of a domain's ownership.
type DomainCheck struct {
	// Verified: the TXT record holds the project's token.
	Verified bool
	// Definitive: the DNS answered, and the token is not there. A
	// verified domain becomes pending again; a lookup that failed
	// (timeout, SERVFAIL) is not definitive and changes no state.
	Definitive bool
	// Reason explains a check that did not verify.
	Reason string
}

// PrunedDeployment names a deployment that retention removed (or would
// remove, in a dry run).
type PrunedDeployment struct {
	ID string
	// SiteLabel names its immutable host, which stops serving.
	SiteLabel string
	ProjectID string
	Status    Status
	CreatedAt time.Time
}

// DeploymentRefs is what one retained deployment needs from the artifact
// store: its manifest (and so every file the manifest names) and the blobs of
// its input, which a re-queued or retried deployment reads again.
type DeploymentRefs struct {
	ID        string
	ProjectID string
	Status    Status
	Manifest  string
	Inputs    []FileOp
}

// ReleaseStore is the part of Store that manages releases. Every method that
// changes what a host name serves leaves the site host's caches to the
// caller, who must invalidate them.
type ReleaseStore interface {
	// ListDeployments returns up to limit of a project's deployments, newest
	// first, starting after cursor ("" for the first page). A cursor that
	// this store did not make is an *Error coded VALIDATION_ERROR.
	ListDeployments(ctx context.Context, projectID, cursor string, limit int) (*DeploymentPage, error)
	// ProjectRelease returns where the project's alias stands.
	ProjectRelease(ctx context.Context, projectID string) (*Release, error)
	// Rollback points the project's alias at one of its completed, retained
	// deployments. Errors: DEPLOYMENT_NOT_FOUND when the project has no such
	// deployment, CONFLICT when it is not completed.
	Rollback(ctx context.Context, projectID, deploymentID string) error
	// DeleteDeployment removes a final, non-production deployment, its logs
	// and its finished queue job. Errors: DEPLOYMENT_NOT_FOUND, CONFLICT.
	DeleteDeployment(ctx context.Context, id string) error

	// Domains lists a project's custom domains, oldest first.
	Domains(ctx context.Context, projectID string) ([]Domain, error)
	// AddDomain attaches a domain; attaching it again is not an error
	// (added is false then). DOMAIN_TAKEN when another project has it.
	AddDomain(ctx context.Context, projectID, domain string) (added bool, err error)
	// RemoveDomain detaches a domain; NOT_FOUND when the project lacks it.
	RemoveDomain(ctx context.Context, projectID, domain string) error
	// DomainToken returns the project's domain verification token, making
	// it on first use. PROJECT_NOT_FOUND when there is no such project.
	DomainToken(ctx context.Context, projectID string) (string, error)
	// RecordDomainCheck stores the outcome of a DNS check and returns the
	// domain's new state; NOT_FOUND when the project lacks the domain.
	RecordDomainCheck(ctx context.Context, projectID, domain string, check DomainCheck) (*Domain, error)
	// PendingDomains returns up to limit pending domains attached since
	// attachedAfter whose last check (if any) is older than checkedBefore,
	// least recently checked first, with their project's token. Domains
	// of projects that never showed their token are left out: nobody can
	// have published it.
	PendingDomains(ctx context.Context, attachedAfter, checkedBefore time.Time, limit int) ([]PendingDomain, error)
	// VerifiedDomainOrg returns the org of the project a verified custom
	// domain is attached to, "" when it is unknown or pending.
	VerifiedDomainOrg(ctx context.Context, domain string) (orgID string, err error)

	// PruneDeployments deletes, per project, every final deployment that is
	// neither among the newest keep nor production, and returns them. With
	// dryRun it only returns them.
	PruneDeployments(ctx context.Context, keep int, dryRun bool) ([]PrunedDeployment, error)
	// EachDeploymentRefs calls fn for every retained deployment, of one
	// project or, with projectID "", of all.
	EachDeploymentRefs(ctx context.Context, projectID string, fn func(DeploymentRefs) error) error
}

// statter is implemented by artifact stores that can tell a blob's size
// without reading it (artifact/fs).
type statter interface {
	Stat(ctx context.Context, digest string) (size int64, modTime time.Time, err error)
}

// ReferencedBlobs collects every blob that deployments refer to, with its
// size: inputs, manifests, the files they name with those files' compressed
// variants, and build logs. References record the sizes of files; a
// manifest's own size comes from the store when it can tell it cheaply, else
// it counts as 0. A manifest that is missing from the store is reported
// through missing and its files cannot be counted; any other failure to read
// one is an error, because a caller deciding what to delete must not act on
// a partial picture.
func ReferencedBlobs(ctx context.Context, artifacts ArtifactStore, refs []DeploymentRefs, missing func(deploymentID, manifest string)) (map[string]int64, error) {
	blobs := map[string]int64{}
	loaded := map[string]bool{}
	for _, r := range refs {
		for _, op := range r.Inputs {
			if op.Digest != "" {
				blobs[op.Digest] = op.Size
			}
		}
		if r.Manifest == "" || loaded[r.Manifest] {
			continue
		}
		loaded[r.Manifest] = true
		if _, ok := blobs[r.Manifest]; !ok {
			blobs[r.Manifest] = 0
			if st, ok := artifacts.(statter); ok {
				if size, _, err := st.Stat(ctx, r.Manifest); err == nil {
					blobs[r.Manifest] = size
				}
			}
		}
		m, err := LoadManifest(ctx, artifacts, r.Manifest)
		if errors.Is(err, ErrNotFound) {
			if missing != nil {
				missing(r.ID, r.Manifest)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("manifest of deployment %s: %w", r.ID, err)
		}
		for _, f := range m.Files {
			blobs[f.Digest] = f.Size
			// The compressed variants are served too: GC keeps them.
			if f.Gzip != nil {
				blobs[f.Gzip.Digest] = f.Gzip.Size
			}
			if f.Brotli != nil {
				blobs[f.Brotli.Digest] = f.Brotli.Size
			}
		}
		if m.BuildLog != nil {
			blobs[m.BuildLog.Digest] = m.BuildLog.Size
		}
		if m.Worker != nil {
			for _, f := range m.Worker.Modules {
				blobs[f.Digest] = f.Size
			}
		}
	}
	return blobs, nil
}
