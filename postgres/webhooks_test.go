package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/libra-deploy/libra-deploy/internal/storetest"
)

func TestOutboxFailureRollsBackTheChange(t *testing.T) {
	db := open(t)
	storetest.OutboxFailureRollsBackTheChange(t, db, func(broken error) {
		db.EnqueueDeliveries = func(context.Context, pgx.Tx, []string) error { return broken }
	})
}
