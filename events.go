package libra

import (
	"context"
	"encoding/json"
	"time"
)

// Event types of a deployment's event stream (GET /deployments/{id}/events).
const (
	EventStatus = "status"
	EventStep   = "step"
	EventLog    = "log"
	// EventDone is the last event of a deployment: its final status.
	EventDone = "done"
)

// Event is one persisted event of a deployment. IDs start at 1 and increase
// by one per event of that deployment, in the order the events committed,
// so a follower that has seen ID n has seen every event up to n.
type Event struct {
	ID   int64           `json:"id"`
	Type string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

// StatusEvent is the data of a "status" event.
type StatusEvent struct {
	Status      Status `json:"status"`
	CurrentStep Step   `json:"currentStep"`
	Progress    int    `json:"progress"`
}

// StepEvent is the data of a "step" event: a step started, completed,
// failed or went back to pending (a retry).
type StepEvent struct {
	Step      Step       `json:"step"`
	Status    StepStatus `json:"status"`
	Timestamp *time.Time `json:"timestamp"`
	Error     string     `json:"error,omitempty"`
}

// DoneEvent is the data of the "done" event.
type DoneEvent struct {
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`
	URL    string `json:"url,omitempty"`
}

// EventStore is a deployment's event log. UpdateDeployment and AppendLogs
// write the events in the same transaction as the state and lines they
// describe, numbering them per deployment while holding its row, so ids
// commit in order on every store.
type EventStore interface {
	// DeploymentEvents returns at most limit events of a deployment whose
	// ids are above after, in id order; none for an unknown deployment.
	DeploymentEvents(ctx context.Context, id string, after int64, limit int) ([]Event, error)
	// WatchEvents returns a channel that receives a value soon after new
	// events of the deployment commit: at once for writes made by this
	// process, and, on a store several nodes share, for writes made by
	// the others while the store's listener is up. Wake-ups coalesce and
	// may be spurious; stop releases the channel.
	WatchEvents(id string) (wake <-chan struct{}, stop func())
}
