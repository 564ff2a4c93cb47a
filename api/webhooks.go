package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
	"github.com/libra-deploy/libra-deploy/webhook"
)

// maxDeliveriesListed is how many of an endpoint's latest deliveries the
// list returns.
const maxDeliveriesListed = 100

// WebhookRequest is the body of POST /projects/{id}/webhooks.
type WebhookRequest struct {
	URL    string   `json:"url" minLength:"1" maxLength:"2048" doc:"Where deliveries are POSTed: http or https, resolving only to public addresses."`
	Events []string `json:"events,omitempty" maxItems:"5" doc:"Event types to receive: deployment.created, deployment.succeeded, deployment.failed, deployment.cancelled, deployment.promoted. Omitted or empty: all of them, and any added later."`
}

// Webhook is an endpoint as the API shows it: never its secret, except in
// the answer that creates it.
type Webhook struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Events         []string   `json:"events" doc:"The event types it receives."`
	Secret         string     `json:"secret,omitempty" doc:"The signing secret (whsec_...): shown only when the endpoint is created."`
	CreatedAt      time.Time  `json:"createdAt"`
	Disabled       bool       `json:"disabled" doc:"True once the endpoint answered 410 Gone: nothing is sent to it any more."`
	DisabledAt     *time.Time `json:"disabledAt,omitempty"`
	DisabledReason string     `json:"disabledReason,omitempty"`
}

// WebhookDelivery is one message to an endpoint and its attempts.
type WebhookDelivery struct {
	ID            string     `json:"id" doc:"The message id, sent as webhook-id on every attempt: the receiver's idempotency key."`
	Event         string     `json:"event"`
	DeploymentID  string     `json:"deploymentId"`
	Status        string     `json:"status" enum:"pending,succeeded,failed"`
	Attempts      int        `json:"attempts"`
	ResponseCode  int        `json:"responseCode,omitempty" doc:"The last attempt's HTTP status; absent when it got no answer."`
	LastError     string     `json:"lastError,omitempty"`
	DurationsMs   []int64    `json:"durationsMs" doc:"Each attempt's duration in milliseconds, oldest first."`
	CreatedAt     time.Time  `json:"createdAt"`
	LastAttemptAt *time.Time `json:"lastAttemptAt,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty" doc:"When the next attempt is due, while pending."`
}

// Huma reads path parameters from the input's own fields, not from an
// embedded struct: each input spells them out.
type webhookCreateInput struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
	Body      WebhookRequest
}

type webhookPath struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
	WebhookID string `path:"webhookId" maxLength:"64" doc:"The endpoint's id."`
}

type deliveryPath struct {
	ProjectID  string `path:"projectId" maxLength:"128" doc:"The project's id."`
	WebhookID  string `path:"webhookId" maxLength:"64" doc:"The endpoint's id."`
	DeliveryID string `path:"deliveryId" maxLength:"64" doc:"The delivery's id (its webhook-id)."`
}

type webhookOutput struct {
	Body Webhook
}

type webhooksOutput struct {
	Body struct {
		Webhooks []Webhook `json:"webhooks"`
	}
}

type deliveriesOutput struct {
	Body struct {
		Deliveries []WebhookDelivery `json:"deliveries" doc:"The latest 100, newest first."`
	}
}

type deliveryOutput struct {
	Body WebhookDelivery
}

func showWebhook(w libra.Webhook) Webhook {
	events := w.Events
	if len(events) == 0 {
		events = libra.WebhookEvents
	}
	return Webhook{ID: w.ID, URL: w.URL, Events: events, CreatedAt: w.CreatedAt, Disabled: w.DisabledAt != nil,
		DisabledAt: w.DisabledAt, DisabledReason: w.DisabledReason}
}

func showDelivery(d libra.WebhookDelivery) WebhookDelivery {
	durations := d.DurationsMs
	if durations == nil {
		durations = []int64{}
	}
	return WebhookDelivery{ID: d.ID, Event: d.Event, DeploymentID: d.DeploymentID, Status: d.Status,
		Attempts: d.Attempts, ResponseCode: d.ResponseCode, LastError: d.LastError, DurationsMs: durations,
		CreatedAt: d.CreatedAt, LastAttemptAt: d.LastAttemptAt, NextAttemptAt: d.NextAttemptAt}
}

func (s *server) createWebhook(ctx context.Context, in *webhookCreateInput) (*webhookOutput, error) {
	p, err := s.projectOfOrg(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	if err := libra.CheckWebhookEvents(in.Body.Events); err != nil {
		return nil, newError(http.StatusBadRequest, libra.CodeValidation, "events: "+err.Error(),
			[]FieldError{{Field: "events", Message: err.Error()}})
	}
	if err := s.checkWebhookURL(ctx, in.Body.URL); err != nil {
		return nil, newError(http.StatusBadRequest, libra.CodeValidation, "url: "+err.Error(),
			[]FieldError{{Field: "url", Message: err.Error()}})
	}
	w := libra.Webhook{ID: storesql.NewWebhookID(), ProjectID: p.ID, URL: in.Body.URL, Events: in.Body.Events,
		Secret: webhook.NewSecret(), CreatedAt: libra.Now()}
	if err := s.cfg.Store.CreateWebhook(ctx, w); err != nil {
		return nil, clientError(ctx, "create webhook", fmt.Errorf("create webhook of %s: %w", p.ID, err))
	}
	out := showWebhook(w)
	out.Secret = w.Secret
	return &webhookOutput{Body: out}, nil
}

func (s *server) checkWebhookURL(ctx context.Context, url string) error {
	if s.cfg.CheckWebhookURL != nil {
		return s.cfg.CheckWebhookURL(ctx, url)
	}
	return webhook.NewSender(false).CheckURL(ctx, url)
}

func (s *server) listWebhooks(ctx context.Context, in *projectPath) (*webhooksOutput, error) {
	p, err := s.projectOfOrg(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	hooks, err := s.cfg.Store.Webhooks(ctx, p.ID)
	if err != nil {
		return nil, clientError(ctx, "list webhooks", fmt.Errorf("webhooks of %s: %w", p.ID, err))
	}
	out := &webhooksOutput{}
	out.Body.Webhooks = make([]Webhook, len(hooks))
	for i, w := range hooks {
		out.Body.Webhooks[i] = showWebhook(w)
	}
	return out, nil
}

// ownWebhook loads an endpoint of a project of the caller's org.
func (s *server) ownWebhook(ctx context.Context, projectID, webhookID string) (*libra.Webhook, error) {
	p, err := s.projectOfOrg(ctx, projectID)
	if err != nil {
		return nil, err
	}
	w, err := s.cfg.Store.WebhookByID(ctx, p.ID, webhookID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, newError(http.StatusNotFound, libra.CodeNotFound, fmt.Sprintf("project %s has no webhook %q", p.ID, webhookID), nil)
	}
	if err != nil {
		return nil, clientError(ctx, "load webhook", fmt.Errorf("webhook %s: %w", webhookID, err))
	}
	return w, nil
}

func (s *server) deleteWebhook(ctx context.Context, in *webhookPath) (*deletedOutput, error) {
	w, err := s.ownWebhook(ctx, in.ProjectID, in.WebhookID)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.DeleteWebhook(ctx, w.ProjectID, w.ID); err != nil && !errors.Is(err, libra.ErrNotFound) {
		return nil, clientError(ctx, "delete webhook", fmt.Errorf("delete webhook %s: %w", w.ID, err))
	}
	return &deletedOutput{Body: Deleted{Success: true, Message: fmt.Sprintf("webhook %s deleted", w.ID), Timestamp: libra.Now()}}, nil
}

func (s *server) listDeliveries(ctx context.Context, in *webhookPath) (*deliveriesOutput, error) {
	w, err := s.ownWebhook(ctx, in.ProjectID, in.WebhookID)
	if err != nil {
		return nil, err
	}
	ds, err := s.cfg.Store.WebhookDeliveries(ctx, w.ID, maxDeliveriesListed)
	if err != nil {
		return nil, clientError(ctx, "list deliveries", fmt.Errorf("deliveries of %s: %w", w.ID, err))
	}
	out := &deliveriesOutput{}
	out.Body.Deliveries = make([]WebhookDelivery, len(ds))
	for i, d := range ds {
		out.Body.Deliveries[i] = showDelivery(d)
	}
	return out, nil
}

func (s *server) redeliver(ctx context.Context, in *deliveryPath) (*deliveryOutput, error) {
	w, err := s.ownWebhook(ctx, in.ProjectID, in.WebhookID)
	if err != nil {
		return nil, err
	}
	d, err := s.cfg.Store.RedeliverWebhook(ctx, w.ID, in.DeliveryID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, newError(http.StatusNotFound, libra.CodeNotFound, fmt.Sprintf("webhook %s has no delivery %q", w.ID, in.DeliveryID), nil)
	}
	if err != nil {
		return nil, clientError(ctx, "redeliver", fmt.Errorf("redeliver %s: %w", in.DeliveryID, err))
	}
	return &deliveryOutput{Body: showDelivery(*d)}, nil
}

// registerWebhooks adds the routes of this file.
func (s *server) registerWebhooks(api huma.API) {
	authed := huma.Middlewares{s.authenticate, requireJSON}
	tags := []string{"Webhooks"}
	base := "/projects/{projectId}/webhooks"
	huma.Register(api, huma.Operation{
		OperationID: "createWebhook", Method: http.MethodPost, Path: base, Summary: "Add a webhook endpoint",
		Description: "Deliveries are signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: " +
			"v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\"> keyed with the secret's base64 part). The secret " +
			"is in this answer only. At most 10 endpoints per project.",
		Tags: tags, Security: tokenSecurity, Middlewares: authed, DefaultStatus: http.StatusCreated,
		Errors: []int{400, 401, 404, 409, 429},
	}, s.createWebhook)
	huma.Register(api, huma.Operation{
		OperationID: "listWebhooks", Method: http.MethodGet, Path: base, Summary: "List a project's webhook endpoints",
		Description: "Never their secrets.", Tags: tags, Security: tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate}, Errors: []int{401, 404, 429},
	}, s.listWebhooks)
	huma.Register(api, huma.Operation{
		OperationID: "deleteWebhook", Method: http.MethodDelete, Path: base + "/{webhookId}", Summary: "Delete a webhook endpoint",
		Description: "With its deliveries; pending ones are not sent.", Tags: tags, Security: tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate}, Errors: []int{401, 404, 429},
	}, s.deleteWebhook)
	huma.Register(api, huma.Operation{
		OperationID: "listWebhookDeliveries", Method: http.MethodGet, Path: base + "/{webhookId}/deliveries",
		Summary: "List an endpoint's deliveries",
		Description: "The latest 100, newest first: status (pending, succeeded, failed), attempts, the last response " +
			"code and error, each attempt's duration, and when the next attempt is due.",
		Tags: tags, Security: tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate}, Errors: []int{401, 404, 429},
	}, s.listDeliveries)
	huma.Register(api, huma.Operation{
		OperationID: "redeliverWebhook", Method: http.MethodPost, Path: base + "/{webhookId}/deliveries/{deliveryId}/redeliver",
		Summary: "Send a finished delivery again",
		Description: "Same message, same webhook-id; the retry schedule starts again. 409 while it is pending or when " +
			"the endpoint is disabled.",
		Tags: tags, Security: tokenSecurity, Middlewares: huma.Middlewares{s.authenticate},
		DefaultStatus: http.StatusAccepted, Errors: []int{401, 404, 409, 429},
	}, s.redeliver)
}
