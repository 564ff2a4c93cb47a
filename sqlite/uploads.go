package sqlite

import (
	"context"
	"fmt"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// RecordBlobs notes that the org holds these blobs, in one transaction.
func (db *DB) RecordBlobs(ctx context.Context, orgID string, blobs []libra.OrgBlob, now time.Time) error {
	blobs = storesql.UniqueBlobs(blobs)
	if len(blobs) == 0 {
		return nil
	}
	tx, err := db.Writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record blobs: %w", err)
	}
	defer tx.Rollback()
	for _, c := range storesql.Chunks(len(blobs), storesql.OrgBlobsChunk) {
		part := blobs[c[0]:c[1]]
		if _, err := tx.ExecContext(ctx, storesql.InsertOrgBlobs(len(part)), storesql.InsertOrgBlobsArgs(orgID, part, now)...); err != nil {
			return fmt.Errorf("record blobs: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record blobs: commit: %w", err)
	}
	return nil
}

// OrgBlobs returns, of digests, those the org holds. The reads are not
// prepared: the statement's text depends on how many digests it names.
func (db *DB) OrgBlobs(ctx context.Context, orgID string, digests []string) (map[string]int64, error) {
	out := make(map[string]int64, len(digests))
	for _, c := range storesql.Chunks(len(digests), storesql.OrgBlobsChunk) {
		part := digests[c[0]:c[1]]
		rows, err := db.reader.QueryContext(ctx, storesql.SelectOrgBlobs(len(part)), storesql.SelectOrgBlobsArgs(orgID, part)...)
		if err != nil {
			return nil, fmt.Errorf("org blobs: %w", err)
		}
		found, err := storesql.Collect(rows, storesql.ScanOrgBlob)
		rows.Close()
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
	rows, err := db.readRows(ctx, storesql.ListOrgBlobs, orgID)
	if err != nil {
		return nil, fmt.Errorf("list org blobs: %w", err)
	}
	defer rows.Close()
	out, err := storesql.Collect(rows, storesql.ScanOrgBlob)
	if err != nil {
		return nil, fmt.Errorf("list org blobs: %w", err)
	}
	return out, nil
}
