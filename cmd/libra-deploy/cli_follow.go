package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/libra-deploy/libra-deploy/client"
)

// Event payloads, as GET /deployments/{id}/events sends them.
type (
	statusEvent struct {
		Status      string `json:"status"`
		CurrentStep string `json:"currentStep"`
		Progress    int    `json:"progress"`
	}
	stepEvent struct {
		Step   string `json:"step"`
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	logEvent struct {
		Step    string `json:"step"`
		Level   string `json:"level"`
		Message string `json:"message"`
	}
	doneEvent struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		URL    string `json:"url"`
	}
)

// follow shows a deployment's steps and log lines on stderr until it ends,
// and records its end in res. Without an event stream on the server it
// polls the status instead.
func follow(ctx context.Context, c *client.Client, res *DeployResult) error {
	err := c.Events(ctx, res.DeploymentID, 0, func(ev client.Event) error { return showEvent(ev, res) })
	if errors.Is(err, client.ErrNoEvents) {
		return poll(ctx, c, res)
	}
	return err
}

func showEvent(ev client.Event, res *DeployResult) error {
	switch ev.Type {
	case "step":
		var s stepEvent
		if err := json.Unmarshal(ev.Data, &s); err != nil {
			return fmt.Errorf("step event: %w", err)
		}
		showStep(s.Step, s.Status, s.Error)
	case "log":
		var l logEvent
		if err := json.Unmarshal(ev.Data, &l); err != nil {
			return fmt.Errorf("log event: %w", err)
		}
		showLog(l.Step, l.Level, l.Message)
	case "done":
		var d doneEvent
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fmt.Errorf("done event: %w", err)
		}
		res.Status, res.Error, res.URL = d.Status, d.Error, d.URL
	}
	return nil
}

func showStep(step, status, errMsg string) {
	if errMsg != "" {
		logf("step %s %s: %s", step, status, errMsg)
		return
	}
	logf("step %s %s", step, status)
}

func showLog(step, level, msg string) {
	if level != "" && level != "info" {
		logf("  [%s] %s: %s", step, level, msg)
		return
	}
	logf("  [%s] %s", step, msg)
}

// Without an event stream the status is polled, first often (a static
// site is live within a fraction of a second), then less and less. The
// wait grows by a quarter, not doubling: the end is then noticed within
// about a fifth of the time it took (doubling let a 300 ms deployment be
// seen 200 ms late), for a poll a few dozen times a second at first.
const (
	pollFirst = 25 * time.Millisecond
	pollEvery = 500 * time.Millisecond
)

func nextPoll(d time.Duration) time.Duration { return min(d+d/4, pollEvery) }

// poll follows a deployment through GET /deploy-status: new log lines and
// step changes, until it is final.
func poll(ctx context.Context, c *client.Client, res *DeployResult) error {
	var seen []client.LogEntry
	step := ""
	wait := pollFirst
	for {
		st, err := c.Status(ctx, res.DeploymentID)
		if err != nil {
			return err
		}
		for _, e := range newEntries(seen, st.LogEntries) {
			showLog(e.Step, e.Level, e.Message)
		}
		seen = st.LogEntries
		if st.CurrentStep != step && st.CurrentStep != "" {
			step = st.CurrentStep
			logf("step %s (%d%%)", step, st.Progress)
		}
		if client.Final(st.Status) {
			res.Status, res.Error, res.URL = st.Status, st.Error, st.URL
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = nextPoll(wait)
	}
}

// newEntries returns the entries of now that come after the last of before:
// the status holds only the latest lines, so the window slides.
func newEntries(before, now []client.LogEntry) []client.LogEntry {
	if len(before) == 0 {
		return now
	}
	last := before[len(before)-1]
	for i := len(now) - 1; i >= 0; i-- {
		if now[i] == last {
			return now[i+1:]
		}
	}
	return now
}
