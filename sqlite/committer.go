package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// Group commit for CreateDeployment.
//
// Each accepted deployment needs a quota charge, a row and a job, atomically.
// SQLite has one writer, and a transaction costs far more than the rows in
// it, so one transaction per deployment would cap the API at the writer's
// commit rate. Instead, requests that arrive while a batch is being written
// wait for the next batch, and a batch is one transaction. An idle service
// commits a lone request at once: there is no waiting window, only the queue
// that forms behind a busy writer.
//
// Quota is decided in memory, in arrival order, from each org's limit and use
// read inside the same transaction, so a refused request writes nothing and
// the others in its batch are unaffected.

const maxBatch = 256

type createRequest struct {
	d            *libra.Deployment
	steps, input string
	done         chan error
}

type batcher struct {
	db       *DB
	requests chan *createRequest
}

func (db *DB) committer() *batcher {
	db.batchOnce.Do(func() {
		db.batch = &batcher{db: db, requests: make(chan *createRequest, 4*maxBatch)}
		go db.batch.loop()
	})
	return db.batch
}

func (b *batcher) submit(ctx context.Context, r *createRequest) error {
	r.done = make(chan error, 1)
	select {
	case b.requests <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the request is written whatever the caller does: wait
	// for the verdict so a 202 is never sent for an uncommitted row, nor a
	// failure for a committed one.
	return <-r.done
}

func (b *batcher) loop() {
	for first := range b.requests {
		batch := []*createRequest{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-b.requests:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		errs, err := b.write(batch)
		for i, r := range batch {
			if err != nil {
				r.done <- err
			} else {
				r.done <- errs[i]
			}
		}
	}
}

type orgQuota struct {
	limit, used, charged int
}

// write commits a batch and returns each request's verdict. The transaction
// does not use any caller's context: a caller that went away must not roll
// back the others.
func (b *batcher) write(batch []*createRequest) ([]error, error) {
	ctx := context.Background()
	tx, err := b.db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()

	// Quota: each org's limit and use this month, read once per batch.
	type orgMonth struct{ org, month string }
	quotas := map[orgMonth]*orgQuota{}
	errs := make([]error, len(batch))
	var accepted []*createRequest
	for i, r := range batch {
		key := orgMonth{r.d.OrgID, r.d.QuotaMonth}
		q := quotas[key]
		if q == nil {
			q = &orgQuota{limit: -1}
			if err := tx.QueryRowContext(ctx, storesql.SelectQuota, key.org).Scan(&q.limit); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("select quota: %w", err)
			}
			if err := tx.QueryRowContext(ctx, storesql.SelectQuotaUsed, key.org, key.month).Scan(&q.used); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("select quota usage: %w", err)
			}
			quotas[key] = q
		}
		if q.limit >= 0 && q.used+q.charged >= q.limit {
			errs[i] = storesql.QuotaExceeded(key.org, q.limit, key.month)
			continue
		}
		q.charged++
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return errs, nil
	}
	for key, q := range quotas {
		if q.charged == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO quota_usage (org_id, month, used) VALUES (?, ?, ?)
			ON CONFLICT (org_id, month) DO UPDATE SET used = used + excluded.used`, key.org, key.month, q.charged); err != nil {
			return nil, fmt.Errorf("charge quota: %w", err)
		}
	}

	ids := make([]string, len(accepted))
	for i, r := range accepted {
		ids[i] = r.d.ID
	}
	jobIDs, err := b.db.Enqueue(ctx, tx, ids)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	insert, err := tx.PrepareContext(ctx, storesql.InsertDeployment)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	defer insert.Close()
	for i, r := range accepted {
		d := r.d
		if _, err := insert.ExecContext(ctx, d.ID, d.SiteLabel, d.ProjectID, d.OrgID, d.UserID, d.CustomDomain, d.Status,
			r.steps, r.input, jobIDs[i], micros(d.CreatedAt), d.QuotaMonth, storesql.TargetOf(d), d.Alias); err != nil {
			return nil, fmt.Errorf("insert deployment: %w", err)
		}
	}
	if err := b.db.announceCreated(ctx, tx, accepted); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return errs, nil
}
