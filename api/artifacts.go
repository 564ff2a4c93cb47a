package api

import (
	"context"
	"errors"
	"net/http"

	libra "github.com/libra-deploy/libra-deploy"
)

// storeRetryAfter is what a client refused for an unavailable artifact
// store is told to wait, in seconds.
const storeRetryAfter = "5"

// storeChecker is implemented by artifact stores on another machine
// (artifact/s3): Check reports whether they can be reached now.
type storeChecker interface {
	Check(ctx context.Context) error
}

// storeFiles makes the request's files durable before the deployment is
// recorded: large files as blobs in the artifact store, small ones inline
// in the deployment row, which commits in the same transaction as the
// quota and the job and so is exactly as durable (and, on a shared
// database, readable by every node).
//
// A deployment cannot finish without the artifact store (its output goes
// there), so when the store is remote and the request had no blob to put,
// the store is asked whether it is reachable: either way a store that is
// down refuses the request with a 503 before anything is written or charged.
func (s *server) storeFiles(ctx context.Context, ops []plannedOp) *ErrorResponse {
	err := s.storeContents(ctx, ops)
	if err == nil && !anyBlob(ops) {
		if c, ok := s.cfg.Artifacts.(storeChecker); ok {
			err = c.Check(ctx)
		}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return clientError(ctx, "store files", err)
	}
	loggerFrom(ctx).Error("store files: artifact store unavailable", "error", err)
	e := newError(http.StatusServiceUnavailable, libra.CodeUnavailable,
		"the artifact store is unavailable; nothing was deployed or charged, try again shortly", nil)
	e.GetHeaders().Set("Retry-After", storeRetryAfter)
	return e
}

func anyBlob(ops []plannedOp) bool {
	for i := range ops {
		if ops[i].op.Digest != "" {
			return true
		}
	}
	return false
}
