package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// Migrations: migrations/000N_what.sql, applied once each, in order, one
// transaction per file, recorded in libra_migrations. Nodes that boot
// together all call migrate; a session advisory lock makes them take turns,
// so the first applies everything (River's migrations too) and the others
// find nothing left to do.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey names the advisory lock: "libramig" as a number, so that
// it does not collide with River's or an operator's own keys by accident.
const migrationLockKey int64 = 0x6c696272616d6967

// Migrations returns the embedded migrations, for tests and tools.
func Migrations() ([]storesql.Migration, error) {
	return storesql.LoadNumberedMigrations(migrationFiles)
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	// The lock belongs to the session: release it even when ctx is done,
	// or the connection would go back to the pool still holding it.
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockKey)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS libra_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create libra_migrations: %w", err)
	}
	for _, m := range ms {
		if err := applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	// River's migrator runs under the same lock: two nodes migrating
	// River at once would race on its tables just the same.
	return migrateRiver(ctx, pool)
}

func migrateRiver(ctx context.Context, pool *pgxpool.Pool) error {
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgxpool.Conn, m storesql.Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var done bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM libra_migrations WHERE version = $1)`, m.Version).Scan(&done); err != nil {
		return err
	}
	if done {
		return nil
	}
	// No arguments: pgx sends the file with the simple protocol, which
	// takes several statements at once.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO libra_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
