package sqlite_test

import (
	"context"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/storetest"
	"github.com/libra-deploy/libra-deploy/workflow"
)

func TestFailLostHonoursCancelRequests(t *testing.T) {
	db := open(t)
	storetest.FailLostHonoursCancelRequests(t, db, func(ctx context.Context) error {
		_, err := db.Writer.ExecContext(ctx, `UPDATE river_job SET state = 'completed', finalized_at = datetime('now', 'subsec')`)
		return err
	})
}

func BenchmarkCancelRequested(b *testing.B) {
	storetest.BenchCancelRequested(b, open(b), workflow.DefaultCancelPoll)
}
