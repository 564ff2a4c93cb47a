package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"

	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/libra-deploy/libra-deploy/queue"
	"github.com/libra-deploy/libra-deploy/sqlite"
)

// openState opens the data directory's database, brings its schema (and
// River's) up to date, and returns the store with its queue. With a nil
// runner the queue only inserts and manages jobs: admin commands use that
// while `serve` works the jobs.
func openState(ctx context.Context, c *config, runner queue.Runner, logger *slog.Logger) (*sqlite.DB, *queue.Queue[*sql.Tx], error) {
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
	q, err := queue.New(driver, runner, queue.Config{
		Name:        c.QueueName,
		MaxWorkers:  c.MaxConcurrent,
		JobTimeout:  c.Timeout,
		RetryBase:   c.RetryBase,
		Logger:      logger,
		MaxAttempts: 3,
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	db.Enqueue = q.InsertManyTx
	return db, q, nil
}
