package libra

import (
	"context"
	"time"
)

// Store is the state every part of the service shares: tokens, projects,
// quotas, deployments, their steps and their logs.
//
// CreateDeployment is the one operation that spans the queue: it writes the
// deployment, charges the org's quota and enqueues the job in a single
// transaction, so an accepted deployment can never be saved and not queued.
type Store interface {
	Ping(ctx context.Context) error

	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash string) (*Token, error)
	// Tokens: list, revoke, last use (tokens.go).
	TokenStore

	CreateProject(ctx context.Context, p Project) error
	Project(ctx context.Context, id string) (*Project, error)
	// ListProjects returns every project of an org, ordered by id (byte
	// order); an empty slice when it has none.
	ListProjects(ctx context.Context, orgID string) ([]Project, error)
	// Deleting a project (projectdelete.go).
	ProjectDeleteStore
	// Build environment per project (projectenv.go).
	EnvStore

	SetQuota(ctx context.Context, orgID string, limit int) error
	Quota(ctx context.Context, orgID string, month string) (*Quota, error)

	// CreateDeployment fails with an *Error coded QUOTA_EXCEEDED when the
	// org's monthly limit is reached; nothing is written then.
	CreateDeployment(ctx context.Context, d *Deployment) error
	Deployment(ctx context.Context, id string) (*Deployment, error)
	// UpdateDeployment saves the mutable fields (status, steps, progress,
	// current step, error, url, attempt and times) and appends logs, in one
	// transaction: a client never sees a step finished before its log lines.
	UpdateDeployment(ctx context.Context, d *Deployment, logs []LogEntry) error
	// RefundQuota gives the deployment's quota back, once.
	RefundQuota(ctx context.Context, id string) error
	// Publish records the deployment's manifest and url and makes it its
	// project's current deployment unless a newer one already is.
	Publish(ctx context.Context, id, manifest, url string) error

	// DomainOwner returns the project a custom domain is attached to, or "".
	DomainOwner(ctx context.Context, domain string) (projectID string, err error)

	AppendLogs(ctx context.Context, id string, entries []LogEntry) error
	Logs(ctx context.Context, id string, limit int) ([]LogEntry, error)

	// SiteByLabel, SiteByProject and SiteByDomain return the deployment
	// and manifest digest that a host name serves; ErrNotFound when nothing
	// is published there. SiteByLabel takes a deployment's site label.
	SiteByLabel(ctx context.Context, siteLabel string) (deploymentID, manifest string, err error)
	SiteByProject(ctx context.Context, projectHost string) (deploymentID, manifest string, err error)
	SiteByDomain(ctx context.Context, domain string) (deploymentID, manifest string, err error)

	// Releases: deployment lists, rollback, deletion, custom domains and
	// retention (releases.go).
	ReleaseStore

	// Leases: who runs a deployment (lease.go). UpdateDeployment,
	// AppendLogs, Publish and RefundQuota called with a context that
	// carries a lease (WithLease) write only while that lease is the
	// deployment's, and return ErrLeaseLost otherwise.
	LeaseStore

	// Events: a deployment's persisted event stream (events.go).
	EventStore
	// Cancelling deployments (cancel.go).
	CancelStore
	// Which org holds which uploaded blob (uploads.go).
	UploadStore
	// Webhook endpoints and deliveries (webhooks.go).
	WebhookStore
	// What each build was made from, to reuse its output (buildreuse.go).
	BuildReuseStore
}

// Clock returns the current time; tests and benchmarks do not replace it, but
// it keeps "now" in one place.
func Now() time.Time { return time.Now().UTC() }
