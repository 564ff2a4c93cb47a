package libra

import "context"

// ProjectDeletion is what deleting a project took away: the hosts that stop
// serving, so that caches in front of the store can drop them.
type ProjectDeletion struct {
	// SiteLabels of the deleted deployments.
	SiteLabels []string
	// Domains that were attached to the project; they are free again.
	Domains []string
}

// ProjectDeleteStore deletes projects.
type ProjectDeleteStore interface {
	// DeleteProject removes a project with its deployments (their logs and
	// finished queue jobs), custom domains and settings, in one
	// transaction. The blobs they referred to stay until garbage collection
	// finds them unreferenced. A project with a queued or running
	// deployment is not deleted: CONFLICT, nothing changes (its worker
	// would otherwise publish into rows that are gone). ErrNotFound for an
	// unknown project. The id is free again afterwards: deployment labels
	// are random and go with their rows, so a new project of the same id
	// serves nothing of the old one. The project must belong to orgID
	// (checked in the same transaction, so a project deleted and created
	// again by another org meanwhile is not touched): ErrNotFound otherwise.
	DeleteProject(ctx context.Context, orgID, id string) (*ProjectDeletion, error)
}
