package storesql

import (
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// OrgBlobsChunk is how many rows one statement reads or writes: big enough
// that 10,000 files take 20 statements, small enough to stay far under
// SQLite's and PostgreSQL's bound-parameter limits.
const OrgBlobsChunk = 500

// ListOrgBlobs reads an org's blobs; ScanOrgBlob reads its rows.
const ListOrgBlobs = `SELECT digest, size FROM org_blobs WHERE org_id = ? ORDER BY digest`

// InsertOrgBlobs returns the upsert of n rows of (org, digest, size, time).
func InsertOrgBlobs(n int) string {
	return `INSERT INTO org_blobs (org_id, digest, size, used_at) VALUES ` + placeholders("(?, ?, ?, ?)", n) +
		` ON CONFLICT (org_id, digest) DO UPDATE SET size = excluded.size, used_at = excluded.used_at`
}

// InsertOrgBlobsArgs are InsertOrgBlobs' arguments.
func InsertOrgBlobsArgs(orgID string, blobs []libra.OrgBlob, now time.Time) []any {
	args := make([]any, 0, 4*len(blobs))
	for _, b := range blobs {
		args = append(args, orgID, b.Digest, b.Size, Micros(now))
	}
	return args
}

// SelectOrgBlobs returns the query for which of n digests an org holds.
func SelectOrgBlobs(n int) string {
	return `SELECT digest, size FROM org_blobs WHERE org_id = ? AND digest IN (` + placeholders("?", n) + `)`
}

// SelectOrgBlobsArgs are SelectOrgBlobs' arguments.
func SelectOrgBlobsArgs(orgID string, digests []string) []any {
	args := make([]any, 0, 1+len(digests))
	args = append(args, orgID)
	for _, d := range digests {
		args = append(args, d)
	}
	return args
}

// ScanOrgBlob reads a row of (digest, size).
func ScanOrgBlob(row Scanner) (libra.OrgBlob, error) {
	var b libra.OrgBlob
	err := row.Scan(&b.Digest, &b.Size)
	return b, err
}

// UniqueBlobs drops repeated digests, keeping the last size given: one
// upsert statement may not touch a row twice on PostgreSQL.
func UniqueBlobs(blobs []libra.OrgBlob) []libra.OrgBlob {
	at := make(map[string]int, len(blobs))
	out := make([]libra.OrgBlob, 0, len(blobs))
	for _, b := range blobs {
		if i, ok := at[b.Digest]; ok {
			out[i] = b
			continue
		}
		at[b.Digest] = len(out)
		out = append(out, b)
	}
	return out
}

// Chunks splits n items into [start, end) ranges of at most size.
func Chunks(n, size int) [][2]int {
	var out [][2]int
	for i := 0; i < n; i += size {
		out = append(out, [2]int{i, min(i+size, n)})
	}
	return out
}

func placeholders(one string, n int) string {
	return strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}
