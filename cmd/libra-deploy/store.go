package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/postgres"
	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/sqlite"
	"github.com/libra-deploy/libra-deploy/webhook"
)

// The state a process works on is SQLite in the data directory (the
// default) or, with POSTGRES_URL, a PostgreSQL database that several nodes
// share. Everything past openState sees only these two interfaces.

// stateStore is the store plus what serve and the admin commands do to it
// beyond libra.Store.
type stateStore interface {
	libra.Store
	Close() error
	// RecoverAtStart repairs what a dead process left behind: jobs it left
	// running (rescued) and deployments whose job ended without them (lost).
	RecoverAtStart(ctx context.Context, queueName string) (rescued, lost int64, err error)
	// Requeue resets a failed deployment and retries its dead-lettered job,
	// in one transaction.
	Requeue(ctx context.Context, id string) error
}

// jobQueue is the deployment queue, whatever River's driver.
type jobQueue interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Check(ctx context.Context) error
	DeadLetters(ctx context.Context, limit int) ([]queue.DeadLetter, error)
}

// postgresURL is POSTGRES_URL: read here rather than kept in config, so
// that it is never printed with the settings; it may hold a password.
func postgresURL() string { return os.Getenv("POSTGRES_URL") }

// openState opens the state database, brings its schema (and River's) up to
// date, and returns the store with its queue. With a nil runner the queue
// only inserts and manages jobs: admin commands use that while `serve`
// works the jobs.
func openState(ctx context.Context, c *config, runner queue.Runner, logger *slog.Logger) (stateStore, jobQueue, error) {
	qc := queue.Config{
		Name:        c.QueueName,
		MaxWorkers:  c.MaxConcurrent,
		JobTimeout:  c.Timeout,
		RetryBase:   c.RetryBase,
		Logger:      logger,
		MaxAttempts: 3,
		ClientID:    c.NodeID,
	}
	if url := postgresURL(); url != "" {
		return openPostgres(ctx, url, c, runner, qc)
	}
	return openSQLite(ctx, c, runner, qc)
}

func openSQLite(ctx context.Context, c *config, runner queue.Runner, qc queue.Config) (stateStore, jobQueue, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	db, err := sqlite.Open(ctx, sqlite.Options{Path: c.dbPath()})
	if err != nil {
		return nil, nil, err
	}
	driver := riversqlite.New(db.Writer)
	if err := queue.Migrate(ctx, driver); err != nil {
		db.Close()
		return nil, nil, err
	}
	qc.Extra = append(qc.Extra, webhookQueue(c.Webhooks, db, qc.Logger))
	q, err := queue.New(driver, runner, qc)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	db.Enqueue = q.InsertManyTx
	db.EnqueueDeliveries = webhook.Enqueuer(q.Client())
	return &sqliteState{DB: db, q: q}, q, nil
}

// openPostgres opens the shared database; postgres.Open runs both
// migrations under an advisory lock.
func openPostgres(ctx context.Context, url string, c *config, runner queue.Runner, qc queue.Config) (stateStore, jobQueue, error) {
	// Each running deployment holds a connection at times, River keeps
	// one for LISTEN, and the API needs some of its own.
	db, err := postgres.Open(ctx, postgres.Options{URL: url, MaxConns: int32(c.MaxConcurrent) + 16,
		NodeID: c.NodeID, Logger: qc.Logger})
	if err != nil {
		return nil, nil, err
	}
	// River's riverpgxv5 wakes a worker by NOTIFY within milliseconds, so
	// polling is only the fallback: River's own default of 1 s, not the
	// 30 ms that SQLite (no NOTIFY) needs. Measured here: pickup p50
	// 3.3 ms with 30 ms polling, 3.6 ms with 1 s; idle CPU 3.2 % and 0.5 %.
	qc.FetchPollInterval = time.Second
	qc.Extra = append(qc.Extra, webhookQueue(c.Webhooks, db, qc.Logger))
	q, err := queue.New[pgx.Tx](riverpgxv5.New(db.Pool), runner, qc)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	db.Enqueue = q.InsertManyTx
	db.EnqueueDeliveries = webhook.Enqueuer(q.Client())
	return &postgresState{DB: db, q: q, node: c.NodeID}, q, nil
}

type sqliteState struct {
	*sqlite.DB
	q *queue.Queue[*sql.Tx]
}

// RecoverAtStart: one serve works a data directory (it holds the lock
// file), so every job still running is an orphan.
func (s *sqliteState) RecoverAtStart(ctx context.Context, queueName string) (int64, int64, error) {
	rescued, err := s.RescueOrphans(ctx, queueName)
	if err != nil {
		return 0, 0, err
	}
	lost, err := s.FailLostDeployments(ctx)
	return rescued, lost, err
}

func (s *sqliteState) Requeue(ctx context.Context, id string) error {
	return s.DB.Requeue(ctx, id, s.q.RetryTx)
}

type postgresState struct {
	*postgres.DB
	q    *queue.Queue[pgx.Tx]
	node string
}

// RecoverAtStart: other nodes may be working the jobs that are running, so
// only those left under this node's own id are rescued here (a dead node's
// are the lease reaper's); lost deployments are safe to fail from any node.
func (s *postgresState) RecoverAtStart(ctx context.Context, queueName string) (int64, int64, error) {
	rescued, err := s.RescueOwnOrphans(ctx, s.node, queueName)
	if err != nil {
		return 0, 0, err
	}
	lost, err := s.FailLostDeployments(ctx)
	return rescued, lost, err
}

func (s *postgresState) Requeue(ctx context.Context, id string) error {
	return s.DB.Requeue(ctx, id, s.q.RetryTx)
}

// databaseBytes is the size of the state database: SQLite's files, or what
// PostgreSQL reports for the database POSTGRES_URL names.
func databaseBytes(ctx context.Context, c *config) (int64, error) {
	if url := postgresURL(); url != "" {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return 0, fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var n int64
		if err := conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
			return 0, fmt.Errorf("database size: %w", err)
		}
		return n, nil
	}
	var n int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if info, err := os.Stat(c.dbPath() + suffix); err == nil {
			n += info.Size()
		}
	}
	return n, nil
}
