package postgres

import (
	"context"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// eventsChannel is the NOTIFY channel of deployment events; the payload is
// the deployment's id. Every node's site listener (siteevents.go) LISTENs
// on it too, so following a deployment costs no connection of its own.
const eventsChannel = "libra_events"

// LogEvents records the reaper's lines as events (storesql.EventLogger);
// logEvents' NOTIFY wakes the followers on every node at the commit.
func (t leaseTx) LogEvents(ctx context.Context, id string, entries []libra.LogEntry) error {
	events, err := logEvents(ctx, t.tx, id, entries)
	if err != nil {
		return err
	}
	return insertEvents(ctx, t.tx, id, events)
}

// DeploymentEvents returns a deployment's events after the given id.
func (db *DB) DeploymentEvents(ctx context.Context, id string, after int64, limit int) ([]libra.Event, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.SelectEvents), id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	out, err := collect(rows, storesql.ScanEvent)
	if err != nil {
		return nil, fmt.Errorf("select events: %w", err)
	}
	return out, nil
}

// WatchEvents wakes on this node's writes at once and on other nodes' when
// their NOTIFY arrives; while the listener is down, only the follower's own
// poll finds them.
func (db *DB) WatchEvents(id string) (<-chan struct{}, func()) {
	return db.events.Watch(id)
}
