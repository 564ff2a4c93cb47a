package libra

import (
	"context"
	"errors"
	"time"
)

// Leases make one node at a time the authority on a running deployment.
//
// River dispatches jobs but cannot tell a dead node from a slow one: it
// rescues a SIGKILLed worker's job only after RescueStuckJobsAfter, and its
// job completion does not stop a paused worker that wakes up later. So the
// worker takes a lease on the deployment row, with an epoch that grows every
// time the lease changes hands, renews it on the database's clock, and every
// write it makes for the deployment (state, logs, publish, refund) names
// that epoch: once another node has taken the lease, the old worker's writes
// change nothing and it stops.

// ErrLeaseLost is returned by a write made under a lease that another node
// has since taken (or that expired and was reaped): the caller must stop at
// once, publishing and writing nothing more.
var ErrLeaseLost = errors.New("the deployment's lease was lost: another node now runs it")

// ErrLeaseHeld is returned by AcquireLease while another node holds a live
// lease on the deployment.
var ErrLeaseHeld = errors.New("another node holds the deployment's lease")

// Lease is one node's claim on one deployment.
type Lease struct {
	DeploymentID string
	Node         string
	Epoch        int64
}

type leaseKey struct{}

// WithLease returns a context whose writes for l.DeploymentID are guarded by
// the lease. Carrying it in the context means no write path of a run (the
// log flusher, cleanup, the final save) can forget the guard.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseFrom returns the lease ctx carries for deployment id, if any.
func LeaseFrom(ctx context.Context, id string) (Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	return l, ok && l.DeploymentID == id
}

// NodeInfo is a node as its heartbeats describe it; Age is measured on the
// database's clock.
type NodeInfo struct {
	ID  string
	Age time.Duration
}

// Reclaimed is a deployment a reaper took back from a node whose lease
// expired: dispatched again with a new job, or, past the limit,
// dead-lettered (failed, quota given back, job discarded).
type Reclaimed struct {
	DeploymentID string
	FromNode     string
	Epoch        int64
	Reclaims     int
	DeadLettered bool
	// Cancelled: its cancel had been requested, so it was cancelled
	// instead of dispatched again (see CancelStore).
	Cancelled bool
}

// LeaseStore is what leases need from the state database. Every time in it
// is the database's: nodes' clocks may disagree, the database's is one.
type LeaseStore interface {
	// Heartbeat records that node is alive.
	Heartbeat(ctx context.Context, node string) error
	// Nodes lists nodes by id, with the age of their last heartbeat.
	Nodes(ctx context.Context) ([]NodeInfo, error)
	// AcquireLease gives node the lease on a queued or running deployment
	// for ttl, with the next epoch, if nobody holds a live one:
	// ErrLeaseHeld otherwise, ErrNotFound when the deployment is final or
	// gone.
	AcquireLease(ctx context.Context, id, node string, ttl time.Duration) (Lease, error)
	// RenewLease extends a lease to ttl from now; ErrLeaseLost if it is
	// no longer the deployment's.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) error
	// ReleaseLease gives a lease up; a lost lease is left alone.
	ReleaseLease(ctx context.Context, l Lease) error
	// ReapLeases takes back up to limit expired leases, and deployments
	// whose job a node fetched but that node's heartbeat is older than
	// deadAfter before its worker took the lease: each one's epoch moves
	// on (fencing its holder), its old queue job is cancelled and a new
	// one is enqueued in the same transaction; a deployment reclaimed more
	// than maxReclaims times is dead-lettered instead.
	ReapLeases(ctx context.Context, deadAfter time.Duration, maxReclaims, limit int) ([]Reclaimed, error)
}
