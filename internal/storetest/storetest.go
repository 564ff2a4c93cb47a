// Package storetest is the conformance suite every libra.Store passes: the
// SQLite store and the PostgreSQL store run the same subtests, so that a
// behaviour the service relies on (exact quota under concurrency, newest-wins
// publishing, retention, domain verification, ...) cannot hold on one and
// not the other.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// NewStore returns an empty store, closed when the test ends, whose
// CreateDeployment enqueues real jobs.
type NewStore func(t *testing.T) libra.Store

// Run runs every conformance subtest against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s libra.Store)
	}{
		{"Ping", testPing},
		{"Tokens", testTokens},
		{"TokenLifecycle", testTokenLifecycle},
		{"Projects", testProjects},
		{"ListProjects", testListProjects},
		{"Quota", testQuota},
		{"QuotaChargeAndRefund", testQuotaChargeAndRefund},
		{"QuotaUnderConcurrency", testQuotaUnderConcurrency},
		{"DeploymentRoundTrip", testDeploymentRoundTrip},
		{"Logs", testLogs},
		{"Events", testEvents},
		{"EventsConcurrent", testEventsConcurrent},
		{"WatchEvents", testWatchEvents},
		{"PublishNewestWins", testPublishNewestWins},
		{"ConcurrentPublishNewestWins", testConcurrentPublish},
		{"PublishCustomDomain", testPublishCustomDomain},
		{"Domains", testDomains},
		{"DomainTokenIsOnePerProject", testDomainToken},
		{"DomainChecks", testDomainChecks},
		{"PendingDomains", testPendingDomains},
		{"ListDeployments", testListDeployments},
		{"RollbackAndRelease", testRollback},
		{"DeleteDeployment", testDeleteDeployment},
		{"DeleteProject", testDeleteProject},
		{"Env", testEnv},
		{"EnvCap", testEnvCap},
		{"Retention", testRetention},
		{"DeploymentRefs", testDeploymentRefs},
		{"ManyDeployments", testManyDeployments},
		{"LeaseTakenRenewedReleased", testLeaseTakenRenewedReleased},
		{"LeaseExpiredAndStolen", testLeaseExpiredAndStolen},
		{"LeaseReaper", testLeaseReaper},
		{"Heartbeat", testHeartbeat},
		{"CancelQueued", testCancelQueued},
		{"CancelRefused", testCancelRefused},
		{"CancelRunning", testCancelRunning},
		{"CancelExpiredLease", testCancelExpiredLease},
		{"CancelPublishRace", testCancelPublishRace},
		{"CancelReaped", testCancelReaped},
		// Targets and stable aliases (targets.go).
		{"PreviewTarget", testPreviewTarget},
		{"PromoteNewestWins", testPromoteNewestWins},
		{"Aliases", testAliases},
		{"AliasNeverShadowsSiteLabel", testAliasNeverShadowsSiteLabel},
		{"AliasRetention", testAliasRetention},
		{"OrgBlobs", testOrgBlobs},
		{"WebhookOutbox", testWebhookOutbox},
		{"WebhookEndpoints", testWebhookEndpoints},
		{"WebhookAttempts", testWebhookAttempts},
		{"WebhookCancelAnnounced", testWebhookCancelAnnounced},
		{"CancelledRetention", testCancelledRetention},
		{"BuildReuse", testBuildReuse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore(t)) })
	}
}

var ctx = context.Background()

const month = "2026-11"

func newDeployment(project, org string) *libra.Deployment {
	return &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: project, OrgID: org, UserID: "u",
		Status: libra.StatusQueued, Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: month,
		Input: []libra.FileOp{{Path: "index.html", Type: libra.OpCreate, Digest: "sha256:00", Size: 1}}}
}

func mustProject(t *testing.T, s libra.Store, id, org string) {
	t.Helper()
	if err := s.CreateProject(ctx, libra.Project{ID: id, OrgID: org, Name: id, CreatedAt: libra.Now()}); err != nil {
		t.Fatalf("create project %s: %v", id, err)
	}
}

func mustDeploy(t *testing.T, s libra.Store, project, org string) *libra.Deployment {
	t.Helper()
	d := newDeployment(project, org)
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	return d
}

// finish marks a deployment final with status, as the workflow would.
func finish(t *testing.T, s libra.Store, d *libra.Deployment, status libra.Status) {
	t.Helper()
	now := libra.Now()
	d.Status, d.StartedAt, d.FinishedAt, d.Progress = status, &now, &now, 100
	if err := s.UpdateDeployment(ctx, d, nil); err != nil {
		t.Fatalf("finish %s: %v", d.ID, err)
	}
}

// complete publishes a deployment and marks it completed.
func complete(t *testing.T, s libra.Store, d *libra.Deployment) {
	t.Helper()
	if err := s.Publish(ctx, d.ID, "sha256:m-"+d.ID, "http://"+d.SiteLabel+".x/"); err != nil {
		t.Fatalf("publish %s: %v", d.ID, err)
	}
	finish(t, s, d, libra.StatusCompleted)
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	if got := libra.ErrorCode(err); err == nil || got != code {
		t.Fatalf("%s: error %v (code %q), want code %s", what, err, got, code)
	}
}

func sameTime(a, b time.Time) bool { return a.Sub(b).Abs() < time.Microsecond }

func ids(ds []libra.DeploymentInfo) string {
	out := ""
	for _, d := range ds {
		out += fmt.Sprintf("%s,", d.ID)
	}
	return out
}
