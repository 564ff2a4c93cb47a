package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Event is one deployment event (GET /deployments/{id}/events): Type is
// status, step, log or done; Data is its JSON object.
type Event struct {
	ID   int64           `json:"id"`
	Type string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

// ErrNoEvents says the server has no event stream (an older server): poll
// the status instead.
var ErrNoEvents = errors.New("the server has no deployment event stream")

// Events follows a deployment's events from after since, calling fn for
// each, until the done event or fn's error. A stream that breaks is
// resumed after the last event seen.
func (c *Client) Events(ctx context.Context, id string, since int64, fn func(Event) error) error {
	for {
		done, last, err := c.eventsOnce(ctx, id, since, fn)
		if done || err != nil && (!retryable(err) || ctx.Err() != nil) {
			return err
		}
		if last == since && err != nil {
			// Nothing came through: send's own retries were spent.
			return err
		}
		since = last
	}
}

func (c *Client) eventsOnce(ctx context.Context, id string, since int64, fn func(Event) error) (done bool, last int64, err error) {
	path := "/deployments/" + url.PathEscape(id) + "/events?since=" + strconv.FormatInt(since, 10)
	resp, err := c.send(ctx, request{method: http.MethodGet, path: path, header: http.Header{"Accept": {"application/x-ndjson"}}})
	if IsStatus(err, http.StatusNotFound) || IsStatus(err, http.StatusMethodNotAllowed) {
		return false, since, ErrNoEvents
	}
	if err != nil {
		return false, since, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	last = since
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return false, last, fmt.Errorf("event stream: %w", err)
		}
		last = max(last, ev.ID)
		if err := fn(ev); err != nil {
			return false, last, err
		}
		if ev.Type == "done" {
			return true, last, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, last, fmt.Errorf("event stream: %w", err)
	}
	return false, last, fmt.Errorf("event stream ended before the deployment did")
}
