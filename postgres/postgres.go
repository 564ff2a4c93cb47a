// Package postgres stores libra-deploy's state, and River's queue, in one
// PostgreSQL database: cluster mode, where several nodes share it. It keeps
// the semantics of package sqlite method for method, and shares its column
// lists, row scanners and most query texts through internal/storesql.
//
// Unlike SQLite, PostgreSQL takes many writers: CreateDeployment is one
// short transaction per request, with the quota charged by a conditional
// upsert whose row lock makes the limit exact across nodes, and River's
// riverpgxv5 driver wakes workers through LISTEN/NOTIFY.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/libra-deploy/libra-deploy/internal/eventhub"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// EnqueueFunc inserts the deployments' queue jobs inside tx and returns the
// jobs' ids in order; queue.Queue[pgx.Tx].InsertManyTx is one.
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, deploymentIDs []string) (jobIDs []int64, err error)

// Options configures Open.
type Options struct {
	// URL is a PostgreSQL connection string (POSTGRES_URL).
	URL string
	// MaxConns bounds the pool; 0 keeps pgxpool's default.
	MaxConns int32
	// NodeID names this node's LISTEN connection (ListenerName).
	NodeID string
	// Logger receives the site events' reports; default slog.Default().
	Logger *slog.Logger
}

// DB is a libra.Store on PostgreSQL.
type DB struct {
	// Pool is shared with River (riverpgxv5).
	Pool *pgxpool.Pool

	// Enqueue must be set before CreateDeployment is called.
	Enqueue EnqueueFunc
	// EnqueueDeliveries inserts webhook delivery jobs (webhooks.go); it
	// must be set before a project has webhooks.
	EnqueueDeliveries EnqueueDeliveriesFunc

	nodeID string
	log    *slog.Logger

	// events wakes this node's followers of deployment events: on this
	// node's writes at once, on other nodes' by their NOTIFY (siteevents.go).
	events eventhub.Hub
}

// Open connects, and brings the service's schema and River's up to date
// under an advisory lock (see migrate.go).
func Open(ctx context.Context, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		// The URL may hold a password: say what is wrong, not what it is.
		return nil, errors.New("POSTGRES_URL is not a valid PostgreSQL connection string")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	// A node paused (SIGSTOP) or cut off inside a transaction would hold
	// its row locks for ever, and the reaper that must take its leases
	// back would wait on them: PostgreSQL ends such a session instead.
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "5s"

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &DB{Pool: pool, nodeID: opts.NodeID, log: logger}, nil
}

// Close closes the pool.
func (db *DB) Close() error {
	db.Pool.Close()
	return nil
}

// Ping checks that the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.Pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// rebound caches storesql texts with PostgreSQL's placeholders.
var rebound sync.Map

// pg returns a shared query text with $n placeholders.
func pg(query string) string {
	if q, ok := rebound.Load(query); ok {
		return q.(string)
	}
	q := storesql.Rebind(query)
	rebound.Store(query, q)
	return q
}

// noRows reports whether err says a query returned no row.
func noRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// inTx runs fn in a transaction and commits it when fn returns nil.
func (db *DB) inTx(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := db.Pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
