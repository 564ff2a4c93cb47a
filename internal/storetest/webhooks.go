package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

func newHook(t *testing.T, s libra.Store, project string, events ...string) libra.Webhook {
	t.Helper()
	w := libra.Webhook{ID: "wh_" + libra.NewDeploymentID(), ProjectID: project, URL: "https://example.com/hook",
		Events: events, Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", CreatedAt: libra.Now()}
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatalf("create webhook: %v", err)
	}
	return w
}

// events returns an endpoint's delivery events, oldest first.
func webhookEvents(t *testing.T, s libra.Store, hook string) ([]string, []libra.WebhookDelivery) {
	t.Helper()
	ds, err := s.WebhookDeliveries(ctx, hook, 100)
	if err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	var out []string
	for i := len(ds) - 1; i >= 0; i-- {
		out = append(out, ds[i].Event)
	}
	return out, ds
}

func wantEvents(t *testing.T, s libra.Store, hook string, want ...string) []libra.WebhookDelivery {
	t.Helper()
	got, ds := webhookEvents(t, s, hook)
	if len(got) != len(want) {
		t.Fatalf("webhook %s: events %v, want %v", hook, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("webhook %s: events %v, want %v", hook, got, want)
		}
	}
	return ds
}

// The outbox: each state change records one delivery per subscribed
// endpoint, a final status once however often it is written, production
// moves by publish and by rollback; a project without endpoints records
// nothing.
func testWebhookOutbox(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	mustProject(t, s, "quiet", "o")
	all := newHook(t, s, "p")
	onlyDone := newHook(t, s, "p", libra.EventDeploymentSucceeded)

	d := mustDeploy(t, s, "p", "o")
	complete(t, s, d)
	finish(t, s, d, libra.StatusCompleted) // written twice: announced once
	d2 := mustDeploy(t, s, "p", "o")
	finish(t, s, d2, libra.StatusFailed)
	if err := s.Rollback(ctx, "p", d.ID); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	ds := wantEvents(t, s, all.ID, libra.EventDeploymentCreated, libra.EventDeploymentPromoted, libra.EventDeploymentSucceeded,
		libra.EventDeploymentCreated, libra.EventDeploymentFailed, libra.EventDeploymentPromoted)
	wantEvents(t, s, onlyDone.ID, libra.EventDeploymentSucceeded)

	var body libra.WebhookPayload
	if err := json.Unmarshal(ds[3].Payload, &body); err != nil { // newest first: [3] is succeeded
		t.Fatalf("payload %s: %v", ds[3].Payload, err)
	}
	if body.Type != libra.EventDeploymentSucceeded || body.Data.DeploymentID != d.ID || body.Data.ProjectID != "p" ||
		body.Data.OrgID != "o" || body.Data.Status != libra.StatusCompleted || len(body.Data.Steps) != 6 {
		t.Fatalf("payload %s", ds[3].Payload)
	}
	for _, x := range ds {
		if x.Status != libra.DeliveryPending || x.Attempts != 0 || x.NextAttemptAt == nil || x.WebhookID != all.ID {
			t.Fatalf("new delivery %+v", x)
		}
	}

	q := mustDeploy(t, s, "quiet", "o")
	complete(t, s, q)
}

// Endpoints: the cap per project, listing, lookup in and out of their
// project, deletion with their deliveries, and deletion with the project.
func testWebhookEndpoints(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	mustProject(t, s, "other", "o")
	for range libra.MaxWebhooksPerProject {
		newHook(t, s, "p")
	}
	extra := libra.Webhook{ID: "wh_extra", ProjectID: "p", URL: "https://x/", Secret: "whsec_eA==", CreatedAt: libra.Now()}
	wantCode(t, "webhook past the cap", s.CreateWebhook(ctx, extra), libra.CodeConflict)
	list, err := s.Webhooks(ctx, "p")
	if err != nil || len(list) != libra.MaxWebhooksPerProject {
		t.Fatalf("webhooks: %d, %v", len(list), err)
	}
	w := newHook(t, s, "other", libra.EventDeploymentCreated, libra.EventDeploymentFailed)
	got, err := s.WebhookByID(ctx, "", w.ID)
	if err != nil || got.URL != w.URL || got.Secret != w.Secret || len(got.Events) != 2 || got.DisabledAt != nil {
		t.Fatalf("webhook by id: %+v, %v", got, err)
	}
	if _, err := s.WebhookByID(ctx, "p", w.ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("webhook of another project: %v", err)
	}
	mustDeploy(t, s, "other", "o")
	_, ds := webhookEvents(t, s, w.ID)
	if err := s.DeleteWebhook(ctx, "other", w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WebhookDelivery(ctx, ds[0].ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("delivery of a deleted webhook: %v", err)
	}
	if err := s.DeleteWebhook(ctx, "other", w.ID); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := s.DeleteProject(ctx, "o", "p"); err != nil {
		t.Fatalf("delete project with webhooks: %v", err)
	}
	if list, err := s.Webhooks(ctx, "p"); err != nil || len(list) != 0 {
		t.Fatalf("webhooks of a deleted project: %d, %v", len(list), err)
	}
}

// Attempts: recorded in order with their durations; 410 disables the
// endpoint, which then gets no new deliveries and no redelivery; a finished
// delivery can be sent again, a pending one cannot.
func testWebhookAttempts(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	w := newHook(t, s, "p")
	d := mustDeploy(t, s, "p", "o")
	_, ds := webhookEvents(t, s, w.ID)
	id := ds[0].ID
	wantCode(t, "redeliver a pending delivery", redeliver(s, w.ID, id), libra.CodeConflict)

	now := libra.Now()
	next := now.Add(5 * time.Second)
	record(t, s, libra.WebhookAttempt{DeliveryID: id, At: now, Duration: 120 * time.Millisecond, ResponseCode: 500,
		Error: "answered 500", Status: libra.DeliveryPending, NextAt: &next})
	record(t, s, libra.WebhookAttempt{DeliveryID: id, At: next, Duration: 30 * time.Millisecond, ResponseCode: 204,
		Status: libra.DeliverySucceeded})
	got, err := s.WebhookDelivery(ctx, id)
	if err != nil || got.Status != libra.DeliverySucceeded || got.Attempts != 2 || got.ResponseCode != 204 ||
		len(got.DurationsMs) != 2 || got.DurationsMs[0] != 120 || got.NextAttemptAt != nil || !sameTime(*got.LastAttemptAt, next) {
		t.Fatalf("after two attempts: %+v, %v", got, err)
	}

	wantCode(t, "redeliver a finished delivery", redeliver(s, w.ID, id), "")
	if got, _ := s.WebhookDelivery(ctx, id); got.Status != libra.DeliveryPending || got.Attempts != 0 {
		t.Fatalf("redelivered: %+v", got)
	}
	if err := redeliver(s, w.ID, "msg_nope"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("redeliver unknown: %v", err)
	}

	record(t, s, libra.WebhookAttempt{DeliveryID: id, At: libra.Now(), ResponseCode: 410, Status: libra.DeliveryFailed,
		Disable: "410 Gone"})
	hook, err := s.WebhookByID(ctx, "p", w.ID)
	if err != nil || hook.DisabledAt == nil || hook.DisabledReason != "410 Gone" {
		t.Fatalf("after 410: %+v, %v", hook, err)
	}
	wantCode(t, "redeliver to a disabled endpoint", redeliver(s, w.ID, id), libra.CodeConflict)
	finish(t, s, d, libra.StatusFailed)
	wantEvents(t, s, w.ID, libra.EventDeploymentCreated)
}

func redeliver(s libra.Store, hook, id string) error {
	_, err := s.RedeliverWebhook(ctx, hook, id)
	return err
}

func record(t *testing.T, s libra.Store, a libra.WebhookAttempt) {
	t.Helper()
	if err := s.RecordWebhookAttempt(ctx, a); err != nil {
		t.Fatalf("record attempt: %v", err)
	}
}

// A deployment ended outside UpdateDeployment is announced too: a queued
// one cancelled (no node runs it) sends deployment.cancelled, once.
func testWebhookCancelAnnounced(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	hook := newHook(t, s, "p")
	d := mustDeploy(t, s, "p", "o")
	status, err := s.RequestCancel(ctx, d.ID)
	if err != nil || status != libra.StatusCancelled {
		t.Fatalf("cancel: %v, %v", status, err)
	}
	ds := wantEvents(t, s, hook.ID, libra.EventDeploymentCreated, libra.EventDeploymentCancelled)
	var body libra.WebhookPayload
	if err := json.Unmarshal(ds[0].Payload, &body); err != nil { // newest first
		t.Fatalf("payload %s: %v", ds[0].Payload, err)
	}
	if body.Data.DeploymentID != d.ID || body.Data.Status != libra.StatusCancelled {
		t.Fatalf("payload %s", ds[0].Payload)
	}
}
