package libra

import "context"

// SiteChange names what one production flip changed, so that a node drops
// just those cached host lookups. Exactly one of ProjectHost, SiteLabel and
// Domain is set.
type SiteChange struct {
	// Generation is the site generation the flip's transaction made.
	Generation int64 `json:"g"`
	// ProjectHost: the project's production alias moved (publish,
	// rollback), and with it what its custom domains serve.
	ProjectHost string `json:"project,omitempty"`
	// SiteLabel: a deployment's immutable host started or stopped serving
	// (publish, delete, retention).
	SiteLabel string `json:"label,omitempty"`
	// Domain: a custom domain was verified, refuted or removed.
	Domain string `json:"domain,omitempty"`
}

// SiteCache is what SiteEvents keeps fresh: the site host's lookups.
type SiteCache interface {
	// Forget drops the lookups one change made stale.
	Forget(c SiteChange)
	// ForgetAll drops every lookup: changes may have been missed.
	ForgetAll()
}

// SiteEvents is implemented by stores that several nodes share (PostgreSQL):
// every production flip is announced to every node. A store without it is
// one node's, where the site host's own Invalidate after each local change is
// enough.
type SiteEvents interface {
	// WatchSites tells cache about every flip, on any node, until ctx
	// ends; it calls ForgetAll whenever it may have missed one.
	WatchSites(ctx context.Context, cache SiteCache) error
}
