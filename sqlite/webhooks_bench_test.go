package sqlite_test

import (
	"context"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/webhook"
)

// BenchmarkFinishDeploymentWithWebhooks: the same write for a project with
// two endpoints, which records two deliveries and their jobs in it.
func BenchmarkFinishDeploymentWithWebhooks(b *testing.B) {
	db, q, ds := benchStore(b, b.N)
	db.EnqueueDeliveries = webhook.Enqueuer(q.Client())
	for _, id := range []string{"wh_a", "wh_b"} {
		if err := db.CreateWebhook(context.Background(), libra.Webhook{ID: id, ProjectID: "p", URL: "https://example.com/",
			Secret: webhook.NewSecret(), CreatedAt: libra.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	finishAll(b, db, ds)
}
