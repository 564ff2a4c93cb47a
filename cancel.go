package libra

import (
	"context"
	"errors"
)

// CodeDeploymentFinished refuses to cancel a deployment that is already
// final, or that has published (a published deployment completes).
const CodeDeploymentFinished = "DEPLOYMENT_FINISHED"

// ErrCancelled is the cause of a run's context when its deployment's
// cancel was requested, and what Publish returns for such a deployment: a
// run that sees it stops and ends the deployment cancelled.
var ErrCancelled = errors.New("the deployment was cancelled")

// CancelStore is what cancellation needs from the state database.
//
// Whether a cancel wins is decided in the store, in one transaction, so
// that a deployment ends in exactly one final status: a cancel request
// refuses a deployment that is final or published, and Publish refuses one
// whose cancel was requested.
type CancelStore interface {
	// RequestCancel asks for deployment id to stop. One that no node runs
	// (queued, or its lease expired) is cancelled there and then: status
	// StatusCancelled, its queue job cancelled, its lease epoch moved on
	// (so a late worker writes nothing) and its quota given back if its
	// build never began; the returned status is StatusCancelled. For one
	// that a node runs, the request is recorded and announced (see
	// WatchCancels), and its current status is returned: the node running
	// it ends it. ErrNotFound when there is no such deployment; an *Error
	// coded CodeDeploymentFinished when it is final or published.
	RequestCancel(ctx context.Context, id string) (Status, error)
	// CancelRequested reports whether a cancel was requested for id: one
	// row read by primary key, cheap enough to poll.
	CancelRequested(ctx context.Context, id string) (bool, error)
	// WatchCancels calls fn with the id of every deployment whose cancel
	// is requested from now on, through this store on any node, until ctx
	// ends. It is the fast path only: an announcement can be missed (a
	// dropped connection), so a runner also polls CancelRequested.
	WatchCancels(ctx context.Context, fn func(id string)) error
}

// BuildBegan reports whether a deployment's build step ever started, in
// this attempt or an earlier one: once it did, the build's resources are
// spent and a cancelled deployment keeps its quota charge.
func (s StepStates) BuildBegan() bool {
	st, ok := s[StepBuild]
	return ok && (st.Status != StepPending || st.Timestamp != nil)
}
