package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	libra "github.com/libra-deploy/libra-deploy"
)

// GET /deployments/{deploymentId}/events: a deployment's persisted events
// (libra.EventStore), replayed from where the client left off and then
// followed live until "done". The store wakes the stream when events
// commit (on this node at once, on another by NOTIFY); a slow poll covers a
// wake-up lost while a listener reconnected, and finds deployments made
// final without events (a lost job failed by the reaper, or a deployment
// that finished before events were stored).

// Defaults of the stream's Config knobs.
const (
	defaultKeepAlive     = 15 * time.Second
	defaultEventPoll     = 2 * time.Second
	defaultStreamsPerOrg = 20
	// eventPage bounds one read: a deployment's 10,000 lines replay in
	// a few reads, and a slow client holds at most this many in memory.
	eventPage = 500
	// legacyLogLines is how many stored lines a replay synthesised for a
	// deployment without events reads: the workflow's log cap.
	legacyLogLines = 10_000
)

type eventsInput struct {
	ID          string `path:"deploymentId" maxLength:"64" doc:"The deployment's id."`
	LastEventID string `header:"Last-Event-ID" maxLength:"20" doc:"The id of the last event received: the stream resumes after it. Wins over since."`
	Since       int64  `query:"since" minimum:"0" doc:"Resume after this event id (0, the default, replays everything)."`
	Accept      string `header:"Accept" doc:"text/event-stream (the default) or application/x-ndjson."`
}

type eventsOutput struct {
	Body func(huma.Context)
}

// eventFormat writes events in one wire format.
type eventFormat interface {
	contentType() string
	event(w http.ResponseWriter, e libra.Event) error
	keepAlive(w http.ResponseWriter) error
}

type sseFormat struct{}

func (sseFormat) contentType() string { return "text/event-stream" }

// event writes one frame; data is compact JSON, so it is one line.
func (sseFormat) event(w http.ResponseWriter, e libra.Event) error {
	_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Type, e.Data)
	return err
}

func (sseFormat) keepAlive(w http.ResponseWriter) error {
	_, err := w.Write([]byte(": keep-alive\n\n"))
	return err
}

type ndjsonFormat struct{}

func (ndjsonFormat) contentType() string { return "application/x-ndjson" }

func (ndjsonFormat) event(w http.ResponseWriter, e libra.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event %d: %w", e.ID, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// keepAlive writes nothing: every NDJSON line must be an event, and a
// client whose stream a proxy cut while quiet resumes with ?since.
func (ndjsonFormat) keepAlive(http.ResponseWriter) error { return nil }

func (s *server) deploymentEvents(ctx context.Context, in *eventsInput) (*eventsOutput, error) {
	d, err := s.deploymentOfOrg(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	after, err := resumeAfter(in)
	if err != nil {
		return nil, err
	}
	release, ok := s.streams.acquire(d.OrgID)
	if !ok {
		return nil, newError(http.StatusTooManyRequests, libra.CodeRateLimited,
			fmt.Sprintf("this org already follows %d event streams on this server; close one first", s.streams.max),
			map[string]any{"maxStreams": s.streams.max})
	}
	var format eventFormat = sseFormat{}
	if wantsNDJSON(in.Accept) {
		format = ndjsonFormat{}
	}
	return &eventsOutput{Body: func(hctx huma.Context) {
		defer release()
		r, w := humago.Unwrap(hctx)
		st := &eventStream{s: s, w: w, rc: http.NewResponseController(w), format: format, id: d.ID, after: after}
		st.run(r.Context())
	}}, nil
}

func resumeAfter(in *eventsInput) (int64, error) {
	if in.LastEventID == "" {
		return in.Since, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(in.LastEventID), 10, 64)
	if err != nil || n < 0 {
		return 0, newError(http.StatusBadRequest, libra.CodeValidation,
			"Last-Event-ID must be the id of an event this stream sent (a non-negative integer)", nil)
	}
	return n, nil
}

// wantsNDJSON reports whether Accept asks for NDJSON rather than SSE.
func wantsNDJSON(accept string) bool {
	return strings.Contains(accept, "application/x-ndjson") && !strings.Contains(accept, "text/event-stream")
}

// eventStream is one client's stream.
type eventStream struct {
	s      *server
	w      http.ResponseWriter
	rc     *http.ResponseController
	format eventFormat
	id     string
	// after is the id of the last event sent (or the client's resume
	// point).
	after int64
}

// run streams until done is sent, the client goes, the deployment is
// deleted or the server shuts down.
func (st *eventStream) run(ctx context.Context) {
	h := st.w.Header()
	h.Set("Content-Type", st.format.contentType())
	h.Set("Cache-Control", "no-store")
	// Proxies such as nginx would otherwise hold events back in a buffer.
	h.Set("X-Accel-Buffering", "no")
	st.w.WriteHeader(http.StatusOK)
	// A stream is long by design: no deadline on the whole response. The
	// connection's progress deadline (WRITE_TIMEOUT) still ends one whose
	// client stops reading.
	_ = st.rc.SetWriteDeadline(time.Time{})
	wake, stop := st.s.cfg.Store.WatchEvents(st.id)
	defer stop()
	poll := time.NewTicker(st.s.cfg.EventPoll)
	defer poll.Stop()
	keep := time.NewTicker(st.s.cfg.EventKeepAlive)
	defer keep.Stop()
	checkFinal := true
	for {
		over, err := st.sendStored(ctx, checkFinal)
		if err != nil {
			loggerFrom(ctx).Info("event stream ended", "deployment", st.id, "error", err)
			return
		}
		if over || st.rc.Flush() != nil {
			return
		}
		checkFinal = false
		select {
		case <-ctx.Done():
			return
		case <-st.s.cfg.Stopping:
			return
		case <-wake:
		case <-poll.C:
			checkFinal = true
		case <-keep.C:
			if st.format.keepAlive(st.w) != nil {
				return
			}
		}
	}
}

// sendStored sends the events stored since the last sent and reports
// whether the stream is over: done sent, or the deployment gone. With
// checkFinal it also reads the deployment and, when it is final but its
// events hold no done, ends the stream with a synthesised one.
func (st *eventStream) sendStored(ctx context.Context, checkFinal bool) (over bool, err error) {
	done, err := st.drain(ctx)
	if done || err != nil || !checkFinal {
		return done, err
	}
	d, err := st.s.cfg.Store.Deployment(ctx, st.id)
	if errors.Is(err, libra.ErrNotFound) {
		return true, nil
	}
	if err != nil || !d.Status.Final() {
		return false, err
	}
	// Final: whatever it wrote has committed, done included if any.
	if done, err := st.drain(ctx); done || err != nil {
		return done, err
	}
	return true, st.sendSynthesised(ctx, d)
}

// drain sends every stored event after st.after and reports whether one
// was done.
func (st *eventStream) drain(ctx context.Context) (bool, error) {
	for {
		events, err := st.s.cfg.Store.DeploymentEvents(ctx, st.id, st.after, eventPage)
		if err != nil {
			return false, fmt.Errorf("read events: %w", err)
		}
		for _, e := range events {
			if err := st.send(e); err != nil {
				return false, err
			}
			if e.Type == libra.EventDone {
				return true, nil
			}
		}
		if len(events) < eventPage {
			return false, nil
		}
	}
}

func (st *eventStream) send(e libra.Event) error {
	if e.ID <= st.after {
		return nil
	}
	if err := st.format.event(st.w, e); err != nil {
		return fmt.Errorf("write event %d: %w", e.ID, err)
	}
	st.after = e.ID
	return nil
}

// sendSynthesised ends the stream of a final deployment whose events have
// no done: one made final without its events (the reaper failing a lost
// job) gets a done after its last stored event; one that finished before
// events were stored gets its stored log lines, its status and done, in
// that order, numbered from 1. Either is the same on every replay, since a
// final deployment writes nothing more.
func (st *eventStream) sendSynthesised(ctx context.Context, d *libra.Deployment) error {
	last, err := st.lastStoredID(ctx)
	if err != nil {
		return err
	}
	var tail []libra.Event
	if last == 0 {
		logs, err := st.s.cfg.Store.Logs(ctx, d.ID, legacyLogLines)
		if err != nil {
			return fmt.Errorf("read logs: %w", err)
		}
		for _, l := range logs {
			tail = appendEvent(tail, libra.EventLog, l)
		}
		tail = appendEvent(tail, libra.EventStatus, libra.StatusEvent{Status: d.Status, CurrentStep: d.CurrentStep, Progress: d.Progress})
	}
	tail = appendEvent(tail, libra.EventDone, libra.DoneEvent{Status: d.Status, Error: d.Error, URL: d.URL})
	for i := range tail {
		tail[i].ID += last
		if err := st.send(tail[i]); err != nil {
			return err
		}
	}
	return nil
}

func appendEvent(events []libra.Event, typ string, data any) []libra.Event {
	b, _ := json.Marshal(data) // plain structs: cannot fail
	return append(events, libra.Event{ID: int64(len(events) + 1), Type: typ, Data: b})
}

// lastStoredID pages to the deployment's last stored event; only streams
// that end with a synthesised done, which are rare, pay for it.
func (st *eventStream) lastStoredID(ctx context.Context) (int64, error) {
	var last int64
	for {
		events, err := st.s.cfg.Store.DeploymentEvents(ctx, st.id, last, eventPage)
		if err != nil {
			return 0, fmt.Errorf("read events: %w", err)
		}
		if len(events) > 0 {
			last = events[len(events)-1].ID
		}
		if len(events) < eventPage {
			return last, nil
		}
	}
}

// eventsDoc describes the stream's two formats in /openapi.json.
const eventsDoc = "Server-Sent Events of a deployment, replayed from what the service stored and then followed live: " +
	"`status` {status, currentStep, progress}, `step` {step, status, timestamp, error?}, `log` {step, level, timestamp, message}, " +
	"and last `done` {status, error?, url?}, after which the stream ends. Each frame is `id: <n>`, `event: <type>`, " +
	"`data: <json>`; ids increase by one per event of the deployment. Reconnect with `Last-Event-ID` (or `?since=N`) " +
	"to get exactly the events after N. A `: keep-alive` comment comes every 15 s. With `Accept: application/x-ndjson` " +
	"the same events come as JSON lines `{\"id\", \"event\", \"data\"}`, without keep-alives. " +
	"Needs a token of the deployment's org: another org's deployment is 404. An org may hold 20 streams open per server (429 beyond)."

func (s *server) registerEvents(api huma.API) {
	frame := &huma.Schema{Type: "string", Description: "SSE frames: id, event and data lines, a blank line after each."}
	line := &huma.Schema{Type: "object", Description: "One event per line.", Properties: map[string]*huma.Schema{
		"id":    {Type: "integer", Format: "int64", Description: "Increases by one per event of the deployment."},
		"event": {Type: "string", Enum: []any{libra.EventStatus, libra.EventStep, libra.EventLog, libra.EventDone}},
		"data":  {Type: "object", Description: "The event's data, as in the SSE frame."},
	}, Required: []string{"id", "event", "data"}}
	huma.Register(api, huma.Operation{
		OperationID: "deploymentEvents",
		Method:      http.MethodGet,
		Path:        "/deployments/{deploymentId}/events",
		Summary:     "Follow a deployment's events (SSE or NDJSON)",
		Description: eventsDoc,
		Tags:        []string{"Deployments"},
		Security:    tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate},
		Errors:      []int{400, 401, 404, 429},
		Responses: map[string]*huma.Response{
			"200": {Description: "The event stream.", Content: map[string]*huma.MediaType{
				"text/event-stream":    {Schema: frame},
				"application/x-ndjson": {Schema: line},
			}},
		},
	}, s.deploymentEvents)
}
