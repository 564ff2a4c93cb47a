package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// events reads every event of a deployment after after, in pages of page.
func events(t *testing.T, s libra.Store, id string, after int64, page int) []libra.Event {
	t.Helper()
	var out []libra.Event
	for {
		got, err := s.DeploymentEvents(ctx, id, after, page)
		if err != nil {
			t.Fatalf("events of %s after %d: %v", id, after, err)
		}
		out = append(out, got...)
		if len(got) < page {
			return out
		}
		after = got[len(got)-1].ID
	}
}

func logLine(i int) libra.LogEntry {
	return libra.LogEntry{Time: libra.Now(), Step: libra.StepBuild, Level: "info", Message: fmt.Sprintf("line %d", i)}
}

// A deployment's life as the workflow saves it gives events numbered from 1
// without gaps: log lines before the state they lead to, steps in order, the
// status when it changed, and done last.
func testEvents(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	if got := events(t, s, d.ID, 0, 10); len(got) != 0 {
		t.Fatalf("a queued deployment has events: %+v", got)
	}
	now := libra.Now()
	d.Status, d.CurrentStep, d.StartedAt = libra.StatusInProgress, libra.StepValidate, &now
	d.Steps[libra.StepValidate] = libra.StepState{Status: libra.StepInProgress, Timestamp: &now}
	save(t, s, d, logLine(0))
	if err := s.AppendLogs(ctx, d.ID, []libra.LogEntry{logLine(1), logLine(2)}); err != nil {
		t.Fatal(err)
	}
	d.Steps[libra.StepValidate] = libra.StepState{Status: libra.StepCompleted, Timestamp: &now}
	d.Steps[libra.StepSync] = libra.StepState{Status: libra.StepFailed, Timestamp: &now, Error: "no"}
	d.Status, d.Error, d.FinishedAt, d.Progress = libra.StatusFailed, "no", &now, 33
	save(t, s, d, logLine(3))
	save(t, s, d) // nothing changed: no events

	want := []string{"log 0", "step validate in_progress", "status in_progress validate 0", "log 1", "log 2",
		"log 3", "step validate completed", "step sync failed", "status failed validate 33", "done failed"}
	for _, page := range []int{1, 3, 100} {
		got := events(t, s, d.ID, 0, page)
		if len(got) != len(want) {
			t.Fatalf("page %d: %d events, want %d: %+v", page, len(got), len(want), got)
		}
		for i, e := range got {
			if e.ID != int64(i+1) || describe(t, e) != want[i] {
				t.Fatalf("page %d, event %d: id %d %q, want id %d %q", page, i, e.ID, describe(t, e), i+1, want[i])
			}
		}
	}
	if got := events(t, s, d.ID, 8, 100); len(got) != 2 || got[0].ID != 9 {
		t.Fatalf("after 8: %+v", got)
	}
	if got := events(t, s, "nonesuchdeploymentid234567", 0, 10); len(got) != 0 {
		t.Fatalf("events of an unknown deployment: %+v", got)
	}
	if err := s.DeleteDeployment(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if got := events(t, s, d.ID, 0, 10); len(got) != 0 {
		t.Fatalf("a deleted deployment keeps %d events", len(got))
	}
}

func save(t *testing.T, s libra.Store, d *libra.Deployment, logs ...libra.LogEntry) {
	t.Helper()
	if err := s.UpdateDeployment(ctx, d, logs); err != nil {
		t.Fatalf("update %s: %v", d.ID, err)
	}
}

// describe renders an event's type and key fields, so one string compares.
func describe(t *testing.T, e libra.Event) string {
	t.Helper()
	var v struct {
		Message, Step, Status, CurrentStep string
		Progress                           int
	}
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("event %d data %s: %v", e.ID, e.Data, err)
	}
	switch e.Type {
	case libra.EventLog:
		return "log " + v.Message[len("line "):]
	case libra.EventStep:
		return fmt.Sprintf("step %s %s", v.Step, v.Status)
	case libra.EventStatus:
		return fmt.Sprintf("status %s %s %d", v.Status, v.CurrentStep, v.Progress)
	default:
		return e.Type + " " + v.Status
	}
}

// The log flusher and state saves run concurrently on different
// connections: every event gets one id, ids have no gaps, and a follower
// reading while they write never sees an id before one it missed.
func testEventsConcurrent(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	const writers, batches = 4, 25
	stop := make(chan struct{})
	followed := make(chan []libra.Event)
	go func() { followed <- follow(s, d.ID, stop) }()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				lines := []libra.LogEntry{logLine(w*1000 + b*2), logLine(w*1000 + b*2 + 1)}
				if err := s.AppendLogs(ctx, d.ID, lines); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	saver := *d
	saver.Steps = libra.NewStepStates()
	for i := range batches {
		saver.Progress = i
		if err := s.UpdateDeployment(ctx, &saver, []libra.LogEntry{logLine(-1 - i)}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	seen := <-followed
	all := events(t, s, d.ID, 0, 1000)
	wantLogs := writers*batches*2 + batches
	assertGapFree(t, all, wantLogs)
	if len(seen) != len(all) {
		t.Fatalf("the follower saw %d events, the store holds %d", len(seen), len(all))
	}
}

// follow reads events after the last it saw until stop, as the API does.
func follow(s libra.Store, id string, stop chan struct{}) []libra.Event {
	var seen []libra.Event
	var after int64
	for {
		select {
		case <-stop:
			got, _ := s.DeploymentEvents(ctx, id, after, 10000)
			return append(seen, got...)
		default:
		}
		got, err := s.DeploymentEvents(ctx, id, after, 7)
		if err != nil {
			return seen
		}
		for _, e := range got {
			if e.ID != after+1 {
				// A gap: record it so the length check fails loudly.
				return append(seen, libra.Event{ID: -e.ID})
			}
			seen = append(seen, e)
			after = e.ID
		}
	}
}

func assertGapFree(t *testing.T, all []libra.Event, wantLogs int) {
	t.Helper()
	lines := map[string]int{}
	for i, e := range all {
		if e.ID != int64(i+1) {
			t.Fatalf("event %d has id %d", i, e.ID)
		}
		if e.Type == libra.EventLog {
			lines[describe(t, e)]++
		}
	}
	if len(lines) != wantLogs {
		t.Fatalf("%d distinct log events, want %d", len(lines), wantLogs)
	}
	for l, n := range lines {
		if n != 1 {
			t.Fatalf("%s stored %d times", l, n)
		}
	}
}

// WatchEvents wakes a follower when the deployment's events commit, not
// when another deployment's do.
func testWatchEvents(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	d := mustDeploy(t, s, "p", "o")
	other := mustDeploy(t, s, "p", "o")
	wake, stop := s.WatchEvents(d.ID)
	defer stop()
	if err := s.AppendLogs(ctx, other.ID, []libra.LogEntry{logLine(1)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("woken by another deployment's events")
	case <-time.After(100 * time.Millisecond):
	}
	if err := s.AppendLogs(ctx, d.ID, []libra.LogEntry{logLine(2)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("not woken by the deployment's events")
	}
}
