package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// streamEvent is one event read from GET /deployments/{id}/events.
type streamEvent struct {
	ID   int64          `json:"id"`
	Type string         `json:"event"`
	Data map[string]any `json:"data"`
	// At is when the client read it.
	At time.Time `json:"-"`
}

func (e streamEvent) str(key string) string {
	v, _ := e.Data[key].(string)
	return v
}

// eventClient reads one event stream: SSE parsed line by line as the
// specification (WHATWG HTML, "server-sent events") says, or NDJSON.
type eventClient struct {
	resp       *http.Response
	rd         *bufio.Reader
	ndjson     bool
	keepAlives int
}

// openEvents starts a stream; query is "" or "?since=N", header pairs
// are "Name", "value". A non-200 answer is returned as a response for the
// caller to check.
func openEvents(t testing.TB, url, tok, id, query string, header ...string) (*eventClient, *response) {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/deployments/"+id+"/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET events: %v", err)
	}
	if resp.StatusCode != 200 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r := response{status: resp.StatusCode, header: resp.Header, body: b}
		_ = json.Unmarshal(b, &r.json)
		return nil, &r
	}
	c := &eventClient{resp: resp, rd: bufio.NewReader(resp.Body)}
	c.ndjson = strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson")
	return c, nil
}

func (c *eventClient) close() { c.resp.Body.Close() }

// next returns the next event; io.EOF once the server ended the stream.
func (c *eventClient) next() (streamEvent, error) {
	if c.ndjson {
		return c.nextLine()
	}
	var e streamEvent
	var data []string
	seen := false
	for {
		line, err := c.rd.ReadString('\n')
		if err != nil {
			return e, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		switch field, value, _ := strings.Cut(line, ":"); {
		case line == "":
			if !seen {
				continue
			}
			e.At = time.Now()
			return e, json.Unmarshal([]byte(strings.Join(data, "\n")), &e.Data)
		case field == "":
			c.keepAlives++ // a comment: ": keep-alive"
		case field == "id":
			e.ID, err = strconv.ParseInt(strings.TrimPrefix(value, " "), 10, 64)
			seen = true
		case field == "event":
			e.Type = strings.TrimPrefix(value, " ")
			seen = true
		case field == "data":
			data = append(data, strings.TrimPrefix(value, " "))
			seen = true
		}
		if err != nil {
			return e, fmt.Errorf("line %q: %w", line, err)
		}
	}
}

// nextLine reads one NDJSON line, which must be one event.
func (c *eventClient) nextLine() (streamEvent, error) {
	line, err := c.rd.ReadString('\n')
	if err != nil {
		return streamEvent{}, err
	}
	e := streamEvent{At: time.Now()}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return e, fmt.Errorf("NDJSON line %q: %w", line, err)
	}
	return e, nil
}

// readUntil reads events until stop says so, or fails the test after
// timeout.
func (c *eventClient) readUntil(t testing.TB, timeout time.Duration, stop func(streamEvent) bool) []streamEvent {
	t.Helper()
	type result struct {
		e   streamEvent
		err error
	}
	var out []streamEvent
	deadline := time.After(timeout)
	for {
		ch := make(chan result, 1)
		go func() { e, err := c.next(); ch <- result{e, err} }()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("after %d events: %v", len(out), r.err)
			}
			out = append(out, r.e)
			if stop(r.e) {
				return out
			}
		case <-deadline:
			c.close()
			t.Fatalf("no end within %s; %d events read", timeout, len(out))
		}
	}
}

func isDone(e streamEvent) bool { return e.Type == "done" }

// checkGapFree fails unless ids run first, first+1, ... and done is last.
func checkGapFree(t testing.TB, events []streamEvent, first int64) {
	t.Helper()
	for i, e := range events {
		if e.ID != first+int64(i) {
			t.Fatalf("event %d has id %d, want %d", i, e.ID, first+int64(i))
		}
		if (e.Type == "done") != (i == len(events)-1) {
			t.Fatalf("done at %d of %d events", i, len(events))
		}
	}
}

// logMessages returns the messages of the log events, in order.
func eventLogMessages(events []streamEvent) []string {
	var out []string
	for _, e := range events {
		if e.Type == "log" {
			out = append(out, e.str("message"))
		}
	}
	return out
}
