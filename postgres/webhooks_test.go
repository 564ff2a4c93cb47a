package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
)

// The outbox is part of the change's transaction: when the delivery's job
// cannot be written, neither can the deployment nor its final status.
func TestOutboxFailureRollsBackTheChange(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "p", OrgID: "o", UserID: "u",
		Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11",
		Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Digest: "sha256:00", Size: 1}}}
	if err := db.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateWebhook(ctx, libra.Webhook{ID: "wh_1", ProjectID: "p", URL: "https://example.com/",
		Secret: "whsec_eA==", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("queue unavailable")
	db.EnqueueDeliveries = func(context.Context, pgx.Tx, []string) error { return broken }

	d.Status = libra.StatusFailed
	if err := db.UpdateDeployment(ctx, d, nil); !errors.Is(err, broken) {
		t.Fatalf("final update: %v, want the enqueue error", err)
	}
	if got, _ := db.Deployment(ctx, d.ID); got.Status != libra.StatusQueued {
		t.Fatalf("status after a failed outbox: %s", got.Status)
	}
	again := *d
	again.ID, again.SiteLabel, again.Status = libra.NewDeploymentID(), "", libra.StatusQueued
	if err := db.CreateDeployment(ctx, &again); !errors.Is(err, broken) {
		t.Fatalf("create: %v, want the enqueue error", err)
	}
	if _, err := db.Deployment(ctx, again.ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("deployment written without its delivery: %v", err)
	}
	if ds, err := db.WebhookDeliveries(ctx, "wh_1", 10); err != nil || len(ds) != 0 {
		t.Fatalf("deliveries: %d, %v", len(ds), err)
	}
}
