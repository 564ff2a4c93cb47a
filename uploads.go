package libra

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// CodeMissingFiles answers a deployment that names blobs (by sha256) that
// its org has not uploaded: nothing is created, and the details list them.
const CodeMissingFiles = "MISSING_FILES"

// OrgBlob is a blob an org uploaded (PUT /files/{sha256}) or that one of its
// deployments stored.
type OrgBlob struct {
	Digest string // "sha256:<hex>", as the artifact store names it
	Size   int64
}

// UploadStore records which org holds which blob. Blobs are stored once for
// everyone (content-addressed), but whether a digest is "present" is
// answered per org: otherwise any org could learn whether another has a
// given file by asking, or deploy it without ever having had its bytes.
type UploadStore interface {
	// RecordBlobs notes that the org holds these blobs, as of now; recording
	// one again refreshes its time.
	RecordBlobs(ctx context.Context, orgID string, blobs []OrgBlob, now time.Time) error
	// OrgBlobs returns, of digests, those the org holds, with their sizes.
	OrgBlobs(ctx context.Context, orgID string, digests []string) (map[string]int64, error)
	// ListOrgBlobs returns every blob the org holds, ordered by digest.
	ListOrgBlobs(ctx context.Context, orgID string) ([]OrgBlob, error)
}

// DigestOfHex turns a client's sha256 (64 lower-case hex digits) into the
// artifact store's digest.
func DigestOfHex(sum string) (string, error) {
	if len(sum) != 64 || strings.ToLower(sum) != sum {
		return "", fmt.Errorf("must be 64 lower-case hex digits (a SHA-256)")
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return "", fmt.Errorf("must be 64 lower-case hex digits (a SHA-256)")
	}
	return DigestPrefix + sum, nil
}
