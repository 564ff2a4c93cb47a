package libra

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Webhook event types (issue 10). A project's endpoints subscribe to some or
// all of them.
const (
	EventDeploymentCreated   = "deployment.created"
	EventDeploymentSucceeded = "deployment.succeeded"
	EventDeploymentFailed    = "deployment.failed"
	EventDeploymentCancelled = "deployment.cancelled"
	EventDeploymentPromoted  = "deployment.promoted"
)

// WebhookEvents lists every event type, in the order the docs give them.
var WebhookEvents = []string{EventDeploymentCreated, EventDeploymentSucceeded, EventDeploymentFailed,
	EventDeploymentCancelled, EventDeploymentPromoted}

// FinalEvent returns the event a deployment reaching status sends, or ""
// when status is not final. "cancelled" is matched by its string so that the
// mapping holds whichever branch adds the status constant.
func FinalEvent(status Status) string {
	switch status {
	case StatusCompleted:
		return EventDeploymentSucceeded
	case StatusFailed:
		return EventDeploymentFailed
	case StatusCancelled:
		return EventDeploymentCancelled
	}
	return ""
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// Webhook is one endpoint of a project.
type Webhook struct {
	ID        string
	ProjectID string
	URL       string
	// Events is what the endpoint receives; empty means every event.
	Events []string
	// Secret is "whsec_" + base64 of the HMAC key. The API shows it once,
	// when the endpoint is made.
	Secret     string
	CreatedAt  time.Time
	DisabledAt *time.Time
	// DisabledReason says why deliveries stopped (a 410 Gone answer).
	DisabledReason string
}

// Wants reports whether the endpoint receives event.
func (w Webhook) Wants(event string) bool {
	return len(w.Events) == 0 || slices.Contains(w.Events, event)
}

// WebhookDelivery is one message to one endpoint and its attempts so far.
// Its ID is the message's webhook-id: the receiver's idempotency key, the
// same on every attempt and on a redelivery.
type WebhookDelivery struct {
	ID            string
	WebhookID     string
	Event         string
	DeploymentID  string
	Payload       []byte
	Status        string
	Attempts      int
	ResponseCode  int
	LastError     string
	DurationsMs   []int64
	CreatedAt     time.Time
	LastAttemptAt *time.Time
	NextAttemptAt *time.Time
}

// WebhookAttempt is the outcome of one delivery attempt, as the worker
// records it.
type WebhookAttempt struct {
	DeliveryID   string
	At           time.Time
	Duration     time.Duration
	ResponseCode int
	Error        string
	// Status is the delivery's state after the attempt.
	Status string
	// NextAt is when the next attempt is due (nil when none is).
	NextAt *time.Time
	// Disable stops the endpoint for good (410 Gone), with this reason.
	Disable string
}

// MaxWebhooksPerProject bounds the endpoints of one project: each final
// status fans out to all of them inside the status write's transaction.
const MaxWebhooksPerProject = 10

// WebhookStore keeps endpoints and their deliveries. Deliveries are written
// by the stores themselves, in the transaction of the change they announce
// (CreateDeployment, a final UpdateDeployment, Publish when production
// moves, Rollback), together with their queue job: a transactional outbox.
type WebhookStore interface {
	// CreateWebhook stores an endpoint; CONFLICT when the project already
	// has MaxWebhooksPerProject.
	CreateWebhook(ctx context.Context, w Webhook) error
	// Webhooks returns a project's endpoints, oldest first.
	Webhooks(ctx context.Context, projectID string) ([]Webhook, error)
	// WebhookByID returns one endpoint of a project (of any project when
	// projectID is ""); ErrNotFound otherwise.
	WebhookByID(ctx context.Context, projectID, id string) (*Webhook, error)
	// DeleteWebhook removes an endpoint and its deliveries; ErrNotFound
	// when the project has no such endpoint.
	DeleteWebhook(ctx context.Context, projectID, id string) error
	// WebhookDeliveries returns an endpoint's latest deliveries, newest first.
	WebhookDeliveries(ctx context.Context, webhookID string, limit int) ([]WebhookDelivery, error)
	// WebhookDelivery returns one delivery; ErrNotFound when there is none.
	WebhookDelivery(ctx context.Context, id string) (*WebhookDelivery, error)
	// RecordWebhookAttempt saves an attempt's outcome on its delivery (and
	// disables the endpoint when asked).
	RecordWebhookAttempt(ctx context.Context, a WebhookAttempt) error
	// RedeliverWebhook starts a finished delivery's schedule again with a
	// new queue job, in one transaction; CONFLICT while it is pending or
	// when its endpoint is disabled, ErrNotFound when the endpoint has no
	// such delivery.
	RedeliverWebhook(ctx context.Context, webhookID, deliveryID string) (*WebhookDelivery, error)
}

// WebhookPayload is the body of every delivery: {type, timestamp, data}.
type WebhookPayload struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      WebhookDeployed `json:"data"`
}

// WebhookDeployed is the deployment as GET /deploy-status shows it, less the
// logs, plus the ids a receiver routes by.
type WebhookDeployed struct {
	DeploymentID string     `json:"deploymentId"`
	ProjectID    string     `json:"projectId"`
	OrgID        string     `json:"orgId"`
	Status       Status     `json:"status"`
	CurrentStep  Step       `json:"currentStep,omitempty"`
	Progress     int        `json:"progress"`
	Steps        StepStates `json:"steps"`
	Error        string     `json:"error,omitempty"`
	URL          string     `json:"url,omitempty"`
}

// NewWebhookPayload renders event about d at time at.
func NewWebhookPayload(event string, d *Deployment, at time.Time) ([]byte, error) {
	steps := NewStepStates()
	for name, st := range d.Steps {
		steps[name] = st
	}
	body, err := json.Marshal(WebhookPayload{Type: event, Timestamp: at.UTC(), Data: WebhookDeployed{
		DeploymentID: d.ID, ProjectID: d.ProjectID, OrgID: d.OrgID, Status: d.Status, CurrentStep: d.CurrentStep,
		Progress: d.Progress, Steps: steps, Error: d.Error, URL: d.URL,
	}})
	if err != nil {
		return nil, fmt.Errorf("encode webhook payload: %w", err)
	}
	return body, nil
}

// CheckWebhookEvents validates an endpoint's event list: known names, no
// repeats.
func CheckWebhookEvents(events []string) error {
	seen := map[string]bool{}
	for _, e := range events {
		if !slices.Contains(WebhookEvents, e) {
			return fmt.Errorf("unknown event %q (known: %s)", e, strings.Join(WebhookEvents, ", "))
		}
		if seen[e] {
			return fmt.Errorf("event %q listed twice", e)
		}
		seen[e] = true
	}
	return nil
}
