package sqlite

import (
	"context"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// Events are numbered after the deployment's highest seq, read under the
// one writer. Not a counter column of deployments, as on PostgreSQL: an
// UPDATE rewrites SQLite's whole row, input (every file op) and all, and
// the log flusher would do that 20 times a second per running deployment.
const (
	lastSeq = `(SELECT coalesce(max(seq), 0) FROM deployment_events WHERE deployment_id = d.id)`
	// selectPrior is what UpdateDeployment compares the new state with.
	selectPrior = `SELECT status, current_step, progress, steps, ` + lastSeq + ` FROM deployments d WHERE d.id = ?`
	// selectLastSeq is a deployment's highest seq, 0 before its first
	// event; no row for an unknown deployment.
	selectLastSeq = `SELECT ` + lastSeq + ` FROM deployments d WHERE d.id = ?`
)

// LogEvents records the reaper's lines as events (storesql.EventLogger).
// Followers find them at their next poll: the reaper's commit wakes no one.
func (t leaseTx) LogEvents(ctx context.Context, id string, entries []libra.LogEntry) error {
	w := txWriter{tx: t.tx}
	events, err := logEvents(ctx, w, id, entries)
	if err != nil {
		return err
	}
	return insertEvents(ctx, w, id, events)
}

// DeploymentEvents returns a deployment's events after the given id.
func (db *DB) DeploymentEvents(ctx context.Context, id string, after int64, limit int) ([]libra.Event, error) {
	rows, err := db.readRows(ctx, storesql.SelectEvents, id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	defer rows.Close()
	out, err := storesql.Collect(rows, storesql.ScanEvent)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	return out, nil
}

// WatchEvents wakes on this process's writes: a SQLite database has one
// serving process.
func (db *DB) WatchEvents(id string) (<-chan struct{}, func()) {
	return db.events.Watch(id)
}
