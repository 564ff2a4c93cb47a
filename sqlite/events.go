package sqlite

import (
	"context"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

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
