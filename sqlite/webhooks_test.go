package sqlite_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/storetest"
)

func TestOutboxFailureRollsBackTheChange(t *testing.T) {
	db := open(t)
	storetest.OutboxFailureRollsBackTheChange(t, db, func(broken error) {
		db.EnqueueDeliveries = func(context.Context, *sql.Tx, []string) error { return broken }
	})
}
