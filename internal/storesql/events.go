package storesql

import (
	"context"
	"encoding/json"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
)

// A deployment's events (libra.EventStore) live in deployment_events, keyed
// (deployment_id, seq). A writer numbers new events after the deployment's
// last seq, which it reads while holding the deployment (PostgreSQL: its
// row's lock, and the counter deployments.event_seq; SQLite: the one
// writer, and max(seq)), so a deployment's seqs are gap-free and commit in
// order whatever else runs.
const (
	SelectEvents = `SELECT seq, type, data FROM deployment_events WHERE deployment_id = ? AND seq > ? ORDER BY seq LIMIT ?`
	DeleteEvents = `DELETE FROM deployment_events WHERE deployment_id = ?`
	// DeleteProjectEvents runs before DeleteProjectDeployments.
	DeleteProjectEvents = `DELETE FROM deployment_events WHERE deployment_id IN (SELECT id FROM deployments WHERE project_id = ?)`
)

// EventLogger is a Tx that can also record log lines as events, which
// numbering does in each dialect's own way: the reaper's lines then reach
// followers like the workflow's.
type EventLogger interface {
	LogEvents(ctx context.Context, id string, entries []libra.LogEntry) error
}

// EventRow is one event as stored: its data is JSON text.
type EventRow struct {
	Seq  int64
	Type string
	Data string
}

// Prior is a deployment's stored state before an update.
type Prior struct {
	Status      libra.Status
	CurrentStep libra.Step
	Progress    int
	Steps       libra.StepStates
	Seq         int64
}

// ScanPrior reads a SelectPrior row.
func ScanPrior(row Scanner) (Prior, error) {
	var p Prior
	var steps string
	if err := row.Scan(&p.Status, &p.CurrentStep, &p.Progress, &steps, &p.Seq); err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(steps), &p.Steps); err != nil {
		return p, fmt.Errorf("decode steps: %w", err)
	}
	return p, nil
}

// UpdateEvents returns the events an update from prior to d with logs
// makes, numbered after prior.Seq: the log lines first (they were printed
// before the state they lead to was saved), then each step whose state
// changed in workflow order, then the status if it changed, and "done" when
// the deployment became final.
func UpdateEvents(prior Prior, d *libra.Deployment, logs []libra.LogEntry) ([]EventRow, error) {
	var ev eventList
	ev.next = prior.Seq
	for _, e := range logs {
		ev.add(libra.EventLog, e)
	}
	for _, name := range libra.Steps {
		now, was := d.Steps[name], prior.Steps[name]
		if stepChanged(was, now) {
			ev.add(libra.EventStep, libra.StepEvent{Step: name, Status: now.Status, Timestamp: now.Timestamp, Error: now.Error})
		}
	}
	progress := max(prior.Progress, d.Progress)
	if d.Status != prior.Status || d.CurrentStep != prior.CurrentStep || progress != prior.Progress {
		ev.add(libra.EventStatus, libra.StatusEvent{Status: d.Status, CurrentStep: d.CurrentStep, Progress: progress})
	}
	if d.Status.Final() && !prior.Status.Final() {
		ev.add(libra.EventDone, libra.DoneEvent{Status: d.Status, Error: d.Error, URL: d.URL})
	}
	return ev.rows, ev.err
}

// LogEvents returns one "log" event per line, numbered after last.
func LogEvents(last int64, logs []libra.LogEntry) ([]EventRow, error) {
	ev := eventList{next: last}
	for _, e := range logs {
		ev.add(libra.EventLog, e)
	}
	return ev.rows, ev.err
}

func stepChanged(was, now libra.StepState) bool {
	if was.Status != now.Status || was.Error != now.Error {
		return true
	}
	if (was.Timestamp == nil) != (now.Timestamp == nil) {
		return true
	}
	return was.Timestamp != nil && !was.Timestamp.Equal(*now.Timestamp)
}

type eventList struct {
	next int64
	rows []EventRow
	err  error
}

func (l *eventList) add(typ string, data any) {
	b, err := json.Marshal(data)
	if err != nil && l.err == nil {
		l.err = fmt.Errorf("encode %s event: %w", typ, err)
	}
	l.next++
	l.rows = append(l.rows, EventRow{Seq: l.next, Type: typ, Data: string(b)})
}

// ScanEvent reads a SelectEvents row.
func ScanEvent(row Scanner) (libra.Event, error) {
	var e libra.Event
	var data string
	if err := row.Scan(&e.ID, &e.Type, &data); err != nil {
		return e, err
	}
	e.Data = json.RawMessage(data)
	return e, nil
}
