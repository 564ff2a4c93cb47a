package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// Leases on SQLite: the same mechanism as on PostgreSQL (internal/storesql),
// with one node. It still matters here: a worker that outlives its lease
// (a stuck build, a paused process) is fenced off just the same.

// leaseTx runs storesql's lease queries in SQLite's spelling.
//
// deliveries, when set (inTx), lets the lease and cancel paths that end a
// deployment announce it to webhooks (storesql.FinalAnnouncer).
type leaseTx struct {
	tx         *sql.Tx
	deliveries storesql.EnqueueDeliveries
}

func (t leaseTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, storesql.SQLiteDialect.SQL(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t leaseTx) QueryRow(ctx context.Context, query string, args ...any) storesql.Scanner {
	return t.tx.QueryRowContext(ctx, storesql.SQLiteDialect.SQL(query), args...)
}

func (leaseTx) NoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// inTx runs fn in a write transaction and commits it when fn returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx leaseTx) error) error {
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(leaseTx{tx: tx, deliveries: db.enqueueDeliveries()}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Heartbeat records that node is alive, on the database's clock.
func (db *DB) Heartbeat(ctx context.Context, node string) error {
	return db.inTx(ctx, func(tx leaseTx) error {
		if _, err := tx.Exec(ctx, storesql.Heartbeat, node); err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
		if _, err := tx.Exec(ctx, storesql.PruneNodes); err != nil {
			return fmt.Errorf("prune nodes: %w", err)
		}
		return nil
	})
}

// Nodes lists the nodes that ever sent a heartbeat.
func (db *DB) Nodes(ctx context.Context) ([]libra.NodeInfo, error) {
	rows, err := db.Writer.QueryContext(ctx, storesql.SQLiteDialect.SQL(storesql.SelectNodes))
	if err != nil {
		return nil, fmt.Errorf("select nodes: %w", err)
	}
	defer rows.Close()
	var out []libra.NodeInfo
	for rows.Next() {
		var n libra.NodeInfo
		var age int64
		if err := rows.Scan(&n.ID, &age); err != nil {
			return nil, fmt.Errorf("scan node: %w", err)
		}
		n.Age = time.Duration(age) * time.Microsecond
		out = append(out, n)
	}
	return out, rows.Err()
}

// AcquireLease: see libra.LeaseStore.
func (db *DB) AcquireLease(ctx context.Context, id, node string, ttl time.Duration) (libra.Lease, error) {
	var l libra.Lease
	err := db.inTx(ctx, func(tx leaseTx) error {
		var err error
		l, err = storesql.Acquire(ctx, tx, id, node, ttl)
		return err
	})
	return l, err
}

// RenewLease: see libra.LeaseStore.
func (db *DB) RenewLease(ctx context.Context, l libra.Lease, ttl time.Duration) error {
	return db.inTx(ctx, func(tx leaseTx) error { return storesql.Renew(ctx, tx, l, ttl) })
}

// ReleaseLease: see libra.LeaseStore.
func (db *DB) ReleaseLease(ctx context.Context, l libra.Lease) error {
	return db.inTx(ctx, func(tx leaseTx) error {
		if _, err := tx.Exec(ctx, storesql.ReleaseLease, l.DeploymentID, l.Epoch, l.Node); err != nil {
			return fmt.Errorf("release lease: %w", err)
		}
		return nil
	})
}

// ReapLeases: see libra.LeaseStore and storesql.ReapAll.
func (db *DB) ReapLeases(ctx context.Context, deadAfter time.Duration, maxReclaims, limit int) ([]libra.Reclaimed, error) {
	query := func(q string, scan func(storesql.Scanner) (storesql.ExpiredLease, error), args ...any) ([]storesql.ExpiredLease, error) {
		return db.scanReapable(ctx, q, scan, args...)
	}
	inTx := func(fn func(storesql.Tx) error) error {
		return db.inTx(ctx, func(tx leaseTx) error { return fn(tx) })
	}
	return storesql.ReapAll(ctx, query, inTx, db.enqueueOne, deadAfter, maxReclaims, limit)
}

func (db *DB) scanReapable(ctx context.Context, query string, scan func(storesql.Scanner) (storesql.ExpiredLease, error), args ...any) ([]storesql.ExpiredLease, error) {
	rows, err := db.Writer.QueryContext(ctx, storesql.SQLiteDialect.SQL(query), args...)
	if err != nil {
		return nil, fmt.Errorf("select reapable deployments: %w", err)
	}
	defer rows.Close()
	var out []storesql.ExpiredLease
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("scan reapable deployment: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (db *DB) enqueueOne(ctx context.Context, tx storesql.Tx, id string) (int64, error) {
	if db.Enqueue == nil {
		return 0, storesql.ErrNoEnqueue
	}
	ids, err := db.Enqueue(ctx, tx.(leaseTx).tx, []string{id})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// guard is storesql.Guard on a SQLite transaction.
func guard(ctx context.Context, tx *sql.Tx, id string) error {
	return storesql.Guard(ctx, leaseTx{tx: tx}, id)
}
