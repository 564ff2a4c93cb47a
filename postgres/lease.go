package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// leaseTx runs storesql's lease queries in PostgreSQL's spelling.
//
// deliveries, when set (inLeaseTx), lets the lease and cancel paths that
// end a deployment announce it to webhooks (storesql.FinalAnnouncer).
type leaseTx struct {
	tx         pgx.Tx
	deliveries storesql.EnqueueDeliveries
}

func (t leaseTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, storesql.PostgresDialect.SQL(query), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t leaseTx) QueryRow(ctx context.Context, query string, args ...any) storesql.Scanner {
	return t.tx.QueryRow(ctx, storesql.PostgresDialect.SQL(query), args...)
}

func (leaseTx) NoRows(err error) bool { return noRows(err) }

func (db *DB) inLeaseTx(ctx context.Context, fn func(tx leaseTx) error) error {
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return fn(leaseTx{tx: tx, deliveries: db.enqueueDeliveries()})
	})
}

// Heartbeat records that node is alive, on the database's clock.
func (db *DB) Heartbeat(ctx context.Context, node string) error {
	return db.inLeaseTx(ctx, func(tx leaseTx) error {
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
	rows, err := db.Pool.Query(ctx, storesql.PostgresDialect.SQL(storesql.SelectNodes))
	if err != nil {
		return nil, fmt.Errorf("select nodes: %w", err)
	}
	out, err := collect(rows, func(row storesql.Scanner) (libra.NodeInfo, error) {
		var n libra.NodeInfo
		var age int64
		err := row.Scan(&n.ID, &age)
		n.Age = time.Duration(age) * time.Microsecond
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("select nodes: %w", err)
	}
	return out, nil
}

// AcquireLease: see libra.LeaseStore.
func (db *DB) AcquireLease(ctx context.Context, id, node string, ttl time.Duration) (libra.Lease, error) {
	var l libra.Lease
	err := db.inLeaseTx(ctx, func(tx leaseTx) error {
		var err error
		l, err = storesql.Acquire(ctx, tx, id, node, ttl)
		return err
	})
	return l, err
}

// RenewLease: see libra.LeaseStore.
func (db *DB) RenewLease(ctx context.Context, l libra.Lease, ttl time.Duration) error {
	return db.inLeaseTx(ctx, func(tx leaseTx) error { return storesql.Renew(ctx, tx, l, ttl) })
}

// ReleaseLease: see libra.LeaseStore.
func (db *DB) ReleaseLease(ctx context.Context, l libra.Lease) error {
	q := storesql.PostgresDialect.SQL(storesql.ReleaseLease)
	if _, err := db.Pool.Exec(ctx, q, l.DeploymentID, l.Epoch, l.Node); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// ReapLeases: see libra.LeaseStore and storesql.ReapAll.
func (db *DB) ReapLeases(ctx context.Context, deadAfter time.Duration, maxReclaims, limit int) ([]libra.Reclaimed, error) {
	query := func(q string, scan func(storesql.Scanner) (storesql.ExpiredLease, error), args ...any) ([]storesql.ExpiredLease, error) {
		return db.scanReapable(ctx, q, scan, args...)
	}
	inTx := func(fn func(storesql.Tx) error) error {
		return db.inLeaseTx(ctx, func(tx leaseTx) error { return fn(tx) })
	}
	return storesql.ReapAll(ctx, query, inTx, db.enqueueOne, deadAfter, maxReclaims, limit)
}

func (db *DB) scanReapable(ctx context.Context, query string, scan func(storesql.Scanner) (storesql.ExpiredLease, error), args ...any) ([]storesql.ExpiredLease, error) {
	rows, err := db.Pool.Query(ctx, storesql.PostgresDialect.SQL(query), args...)
	if err != nil {
		return nil, fmt.Errorf("select reapable deployments: %w", err)
	}
	out, err := collect(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("select reapable deployments: %w", err)
	}
	return out, nil
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

// guard is storesql.Guard on a PostgreSQL transaction.
func guard(ctx context.Context, tx pgx.Tx, id string) error {
	return storesql.Guard(ctx, leaseTx{tx: tx}, id)
}
