package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// RecordBlobs notes that the org holds these blobs, in one transaction.
func (db *DB) RecordBlobs(ctx context.Context, orgID string, blobs []libra.OrgBlob, now time.Time) error {
	blobs = storesql.UniqueBlobs(blobs)
	if len(blobs) == 0 {
		return nil
	}
	return db.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for _, c := range storesql.Chunks(len(blobs), storesql.OrgBlobsChunk) {
			part := blobs[c[0]:c[1]]
			if _, err := tx.Exec(ctx, storesql.Rebind(storesql.InsertOrgBlobs(len(part))), storesql.InsertOrgBlobsArgs(orgID, part, now)...); err != nil {
				return fmt.Errorf("record blobs: %w", err)
			}
		}
		return nil
	})
}

// OrgBlobs returns, of digests, those the org holds.
func (db *DB) OrgBlobs(ctx context.Context, orgID string, digests []string) (map[string]int64, error) {
	out := make(map[string]int64, len(digests))
	for _, c := range storesql.Chunks(len(digests), storesql.OrgBlobsChunk) {
		part := digests[c[0]:c[1]]
		rows, err := db.Pool.Query(ctx, storesql.Rebind(storesql.SelectOrgBlobs(len(part))), storesql.SelectOrgBlobsArgs(orgID, part)...)
		if err != nil {
			return nil, fmt.Errorf("org blobs: %w", err)
		}
		found, err := collect(rows, storesql.ScanOrgBlob)
		if err != nil {
			return nil, fmt.Errorf("org blobs: %w", err)
		}
		for _, b := range found {
			out[b.Digest] = b.Size
		}
	}
	return out, nil
}

// ListOrgBlobs returns every blob the org holds, by digest.
func (db *DB) ListOrgBlobs(ctx context.Context, orgID string) ([]libra.OrgBlob, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.ListOrgBlobs), orgID)
	if err != nil {
		return nil, fmt.Errorf("list org blobs: %w", err)
	}
	out, err := collect(rows, storesql.ScanOrgBlob)
	if err != nil {
		return nil, fmt.Errorf("list org blobs: %w", err)
	}
	return out, nil
}
