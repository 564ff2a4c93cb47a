package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// schema.sql is the base every database starts from and is never edited for a
// new column: a data directory made by an older binary already has its
// tables, and CREATE TABLE IF NOT EXISTS would leave them as they were. Each
// change after it is a numbered file in migrations/ (0001_what.sql, ...),
// applied once, in order, in one transaction per file; PRAGMA user_version
// records how many have run.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration = storesql.Migration

func loadMigrations() ([]migration, error) { return storesql.LoadMigrations(migrationFiles) }

// migrate applies the migrations the database has not seen yet. The writer
// pool has one connection, and BEGIN IMMEDIATE serialises two processes that
// open the same file at once: the second sees the first's user_version.
func migrate(ctx context.Context, w *sql.DB) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := applyMigration(ctx, w, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, w *sql.DB, m migration) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var have int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return err
	}
	if have >= m.Version {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.Version)); err != nil {
		return err
	}
	return tx.Commit()
}
