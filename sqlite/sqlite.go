// Package sqlite stores libra-deploy's state, and River's queue, in one SQLite
// file. It is the embedded default: nothing to install, one data directory.
//
// SQLite allows one writer at a time, and River's SQLite driver wants a pool
// of exactly one connection. So DB keeps two pools on the same file: a writer
// with one connection, used for every write and by River, and a small
// read-only pool for the API's reads (status polling is the hottest path),
// which WAL lets run beside the writer. Code holding a transaction on the
// writer must never use the writer pool for anything else: with one
// connection, that waits for itself forever.
package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/libra-deploy/libra-deploy/internal/eventhub"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

//go:embed schema.sql
var schema string

// EnqueueFunc inserts the deployments' queue jobs inside tx and returns the
// jobs' ids in order. The queue package provides it; it is a function so
// that this package does not decide how jobs are shaped.
type EnqueueFunc func(ctx context.Context, tx *sql.Tx, deploymentIDs []string) (jobIDs []int64, err error)

// Options configures Open.
type Options struct {
	// Path is the database file; it is created if missing.
	Path string
	// ReadConns is the size of the read-only pool (default 4).
	ReadConns int
}

// DB is a libra.Store on SQLite.
type DB struct {
	// Writer is the single-connection pool that River must also use.
	Writer *sql.DB
	reader *sql.DB

	// Enqueue must be set before CreateDeployment is called.
	Enqueue EnqueueFunc
	// EnqueueDeliveries inserts webhook delivery jobs (webhooks.go); it
	// must be set before a project has webhooks.
	EnqueueDeliveries EnqueueDeliveriesFunc

	batchOnce sync.Once
	batch     *batcher

	// stmts caches prepared read statements by query text.
	stmts sync.Map

	// events wakes this process's followers of deployment events.
	events eventhub.Hub
	// cancels hears of cancel requests (cancel.go).
	cancels cancelWatchers

	// writeStmts caches statements prepared on the writer by query text;
	// wanted are those to prepare after the current commit (statements.go).
	writeStmts sync.Map
	wantMu     sync.Mutex
	wanted     map[string]bool
	prepared   int
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// BEGIN IMMEDIATE takes the write lock up front, so two processes
		// (serve and an admin command) wait on busy_timeout instead of
		// failing when a read transaction tries to become a write one.
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at opts.Path and applies the
// service's schema. River's own tables are migrated by package queue.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	w, err := sql.Open("sqlite", dsn(opts.Path, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("apply schema: %w", err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate %s: %w", opts.Path, err)
	}
	// The database holds token hashes and every deployment's input: only
	// the service may read it.
	for _, p := range []string{opts.Path, opts.Path + "-wal", opts.Path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.Close()
			return nil, fmt.Errorf("restrict %s: %w", p, err)
		}
	}
	r, err := sql.Open("sqlite", dsn(opts.Path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s read-only: %w", opts.Path, err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	return &DB{Writer: w, reader: r}, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	rerr := db.reader.Close()
	if err := db.Writer.Close(); err != nil {
		return err
	}
	return rerr
}

// Ping checks that the database answers a query on both pools.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.readRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("read pool: %w", err)
	}
	if err := db.Writer.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("write pool: %w", err)
	}
	return nil
}

// micros and fromMicros are storesql's, under the names this package's
// queries grew up with.
func micros(t time.Time) int64 { return storesql.Micros(t) }

func fromMicros(v int64) time.Time { return storesql.FromMicros(v) }
