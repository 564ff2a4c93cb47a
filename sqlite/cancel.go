package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// Cancellation on SQLite: one node (serve holds the data directory's lock),
// so a cancel request is announced in-process, after its commit.

// cancelWatchers is who WatchCancels is telling.
type cancelWatchers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(id string)
}

func (w *cancelWatchers) add(fn func(string)) (remove func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(string){}
	}
	n := w.next
	w.next++
	w.fns[n] = fn
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.fns, n)
	}
}

func (w *cancelWatchers) announce(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, fn := range w.fns {
		fn(id)
	}
}

// RequestCancel: see libra.CancelStore.
func (db *DB) RequestCancel(ctx context.Context, id string) (libra.Status, error) {
	var status libra.Status
	err := db.inTx(ctx, func(tx leaseTx) error {
		var err error
		status, err = storesql.RequestCancel(ctx, tx, id)
		return err
	})
	if err == nil && status != libra.StatusCancelled {
		db.cancels.announce(id)
	}
	return status, err
}

// CancelRequested: see libra.CancelStore.
func (db *DB) CancelRequested(ctx context.Context, id string) (bool, error) {
	row := db.readRow(ctx, storesql.SelectCancelRequested, id)
	return storesql.CancelRequested(row, func(err error) bool { return errors.Is(err, sql.ErrNoRows) }, id)
}

// WatchCancels: see libra.CancelStore. It returns when ctx ends.
func (db *DB) WatchCancels(ctx context.Context, fn func(id string)) error {
	remove := db.cancels.add(fn)
	defer remove()
	<-ctx.Done()
	return nil
}
