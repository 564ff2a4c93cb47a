package main_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chattyBuild prints n numbered lines, one every everyMs, each with the
// time it was printed (ms since the epoch), then builds a page; with fail
// set it exits 1 instead.
func chattyBuild(n, everyMs int, fail bool) []map[string]any {
	end := `fs.mkdirSync("dist",{recursive:true});fs.writeFileSync("dist/index.html","<p>chatty</p>")`
	if fail {
		end = `console.error("giving up on purpose");process.exit(1)`
	}
	return files(
		"package.json", `{"name":"chatty","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js", fmt.Sprintf(`const fs=require("fs");let i=0;const t=setInterval(()=>{`+
			`console.log("chatty "+i+" at "+Date.now());if(++i==%d){clearInterval(t);%s}},%d)`, n, end, everyMs))
}

// chattyLines are the build's own lines among log messages, in order.
func chattyLines(msgs []string) []int {
	var out []int
	for _, m := range msgs {
		var i int
		var at int64
		if _, err := fmt.Sscanf(m, "chatty %d at %d", &i, &at); err == nil {
			out = append(out, i)
		}
	}
	return out
}

// A client follows a build over SSE, drops the connection halfway and
// resumes with Last-Event-ID: it gets every event exactly once, in order,
// ending with done; the log lines are exactly those the deployment stored.
// Keep-alives arrive, and a stream longer than WRITE_TIMEOUT is not cut.
func TestEventsFollowBuildWithReconnect(t *testing.T) {
	s := startServer(t, "EVENTS_KEEPALIVE=200ms", "WRITE_TIMEOUT=1s")
	tok := s.setup("acme", "chatty")
	const lines = 120
	id := deployFiles(s, tok, "acme", "chatty", chattyBuild(lines, 25, false)).str("deploymentId")

	// A live NDJSON follower alongside: every line one event, no
	// keep-alive lines, the same events.
	nd, bad := openEvents(t, s.url, tok, id, "", "Accept", "application/x-ndjson")
	if bad != nil {
		t.Fatalf("open NDJSON: %d %s", bad.status, bad.body)
	}
	ndDone := make(chan []streamEvent, 1)
	go func() { ndDone <- readToDone(nd) }()
	first, bad := openEvents(t, s.url, tok, id, "")
	if bad != nil {
		t.Fatalf("open: %d %s", bad.status, bad.body)
	}
	if ct := first.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	got := first.readUntil(t, 2*time.Minute, func(e streamEvent) bool {
		return slices.Equal(chattyLines([]string{e.str("message")}), []int{30})
	})
	first.close()
	last := got[len(got)-1].ID
	second, bad := openEvents(t, s.url, tok, id, "", "Last-Event-ID", strconv.FormatInt(last, 10))
	if bad != nil {
		t.Fatalf("resume: %d %s", bad.status, bad.body)
	}
	start := time.Now()
	got = append(got, second.readUntil(t, 2*time.Minute, isDone)...)
	if _, err := second.next(); err == nil {
		t.Fatal("the stream went on after done")
	}
	t.Logf("%d events, resumed after id %d; second stream %s; keep-alives %d+%d",
		len(got), last, time.Since(start).Round(time.Millisecond), first.keepAlives, second.keepAlives)

	if live := <-ndDone; !sameEvents(live, got) {
		t.Fatalf("the NDJSON follower got %d events, the SSE client %d: %+v", len(live), len(got), live)
	}
	if second.keepAlives == 0 && first.keepAlives == 0 {
		t.Error("no keep-alive comment in streams longer than the keep-alive period")
	}
	checkFollowed(t, s, id, got, lines)
}

// checkFollowed: a completed build's events, gap-free, with every build
// line once and in order, exactly the stored log, and every step.
func checkFollowed(t *testing.T, s *server, id string, got []streamEvent, lines int) {
	t.Helper()
	checkGapFree(t, got, 1)
	if d := got[len(got)-1]; d.str("status") != "completed" || d.str("url") == "" {
		t.Fatalf("done: %+v", d.Data)
	}
	if want := seq(lines); !slices.Equal(chattyLines(eventLogMessages(got)), want) {
		t.Fatalf("build lines received: %v", chattyLines(eventLogMessages(got)))
	}
	stored := logMessages(s.waitFinal(id, time.Minute))
	if msgs := eventLogMessages(got); !slices.Equal(msgs, stored) {
		t.Fatalf("log events differ from the stored log:\n%q\n%q", msgs, stored)
	}
	checkSteps(t, got)
}

// readToDone reads events until done or an error (then the events so far,
// and one with the error as its type so that comparisons fail); it may
// run outside the test's goroutine.
func readToDone(c *eventClient) []streamEvent {
	defer c.close()
	var out []streamEvent
	for {
		e, err := c.next()
		if err != nil {
			return append(out, streamEvent{Type: "error: " + err.Error()})
		}
		if out = append(out, e); isDone(e) {
			return out
		}
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// checkSteps: every step of a completed deployment started and completed,
// in workflow order, and a status event reported 100 %.
func checkSteps(t *testing.T, events []streamEvent) {
	t.Helper()
	var steps []string
	progress := 0.0
	for _, e := range events {
		switch e.Type {
		case "step":
			if e.str("timestamp") == "" {
				t.Errorf("step event without a timestamp: %+v", e.Data)
			}
			steps = append(steps, e.str("step")+" "+e.str("status"))
		case "status":
			p, _ := e.Data["progress"].(float64)
			progress = max(progress, p)
		}
	}
	var want []string
	for _, st := range []string{"validate", "sync", "sandbox", "build", "deploy", "cleanup"} {
		want = append(want, st+" in_progress", st+" completed")
	}
	if !slices.Equal(steps, want) || progress != 100 {
		t.Fatalf("steps %v, progress %v", steps, progress)
	}
}

// A finished deployment replays in full, the same over SSE and NDJSON;
// since and Last-Event-ID give exactly the events after them; bad input
// and other orgs get errors in the unified format.
func TestEventsReplayNDJSONAndErrors(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "chatty")
	other := s.setup("globex", "theirs")
	id := deployFiles(s, tok, "acme", "chatty", chattyBuild(20, 5, false)).str("deploymentId")
	if st := s.waitFinal(id, 2*time.Minute); st.str("status") != "completed" {
		t.Fatalf("build: %.2000s", st.body)
	}
	checkEventsDocumented(t, s)
	sse := readAll(t, s.url, tok, id, "")
	checkGapFree(t, sse, 1)
	nd := readAll(t, s.url, tok, id, "", "Accept", "application/x-ndjson")
	if !sameEvents(sse, nd) {
		t.Fatalf("NDJSON replay differs from SSE:\n%+v\n%+v", nd, sse)
	}
	mid := int64(len(sse) / 2)
	for _, tt := range []struct {
		name   string
		query  string
		header []string
	}{
		{"ndjson since", "?since=" + strconv.FormatInt(mid, 10), []string{"Accept", "application/x-ndjson"}},
		{"sse since", "?since=" + strconv.FormatInt(mid, 10), nil},
		{"Last-Event-ID wins over since", "?since=1", []string{"Last-Event-ID", strconv.FormatInt(mid, 10)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := readAll(t, s.url, tok, id, tt.query, tt.header...)
			if !sameEvents(got, sse[mid:]) {
				t.Fatalf("after %d: %d events, want %d", mid, len(got), len(sse)-int(mid))
			}
		})
	}
	if got := readAll(t, s.url, tok, id, "?since=100000"); len(got) != 0 {
		t.Fatalf("after the end: %+v", got)
	}
	checkEventErrors(t, s, tok, other, id)
}

// checkEventErrors: bad input and other orgs get errors in the unified
// format.
func checkEventErrors(t *testing.T, s *server, tok, other, id string) {
	for _, tt := range []struct {
		name, tok, id, query string
		header               []string
		status               int
		code                 string
	}{
		{"no token", "", id, "", nil, 401, "UNAUTHORIZED"},
		{"another org's token", other, id, "", nil, 404, "DEPLOYMENT_NOT_FOUND"},
		{"unknown id", tok, "abcdefghijklmnopqrstuvwxyz", "", nil, 404, "DEPLOYMENT_NOT_FOUND"},
		{"not an id", tok, "nope", "", nil, 404, "DEPLOYMENT_NOT_FOUND"},
		{"negative since", tok, id, "?since=-1", nil, 400, "VALIDATION_ERROR"},
		{"bad Last-Event-ID", tok, id, "", []string{"Last-Event-ID", "x1"}, 400, "VALIDATION_ERROR"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, bad := openEvents(t, s.url, tt.tok, tt.id, tt.query, tt.header...)
			if c != nil {
				c.close()
				t.Fatalf("opened; want %d", tt.status)
			}
			wantCode(t, *bad, tt.status, tt.code)
		})
	}
}

// checkEventsDocumented: /openapi.json describes the route's two formats.
func checkEventsDocumented(t *testing.T, s *server) {
	t.Helper()
	doc := s.do("GET", "/openapi.json", nil)
	paths, _ := doc.json["paths"].(map[string]any)
	op, _ := paths["/deployments/{deploymentId}/events"].(map[string]any)
	get, _ := op["get"].(map[string]any)
	responses, _ := get["responses"].(map[string]any)
	ok, _ := responses["200"].(map[string]any)
	content, _ := ok["content"].(map[string]any)
	for _, media := range []string{"text/event-stream", "application/x-ndjson"} {
		if content[media] == nil {
			t.Errorf("/openapi.json does not document %s for the events route: %v", media, ok)
		}
	}
	for _, code := range []string{"401", "404", "429"} {
		if responses[code] == nil {
			t.Errorf("/openapi.json does not document %s for the events route", code)
		}
	}
}

func openStreams(t *testing.T, s *server, tok, id string, n int) []*eventClient {
	t.Helper()
	var streams []*eventClient
	for range n {
		c, bad := openEvents(t, s.url, tok, id, "")
		if bad != nil {
			t.Fatalf("stream %d: %d %s", len(streams)+1, bad.status, bad.body)
		}
		streams = append(streams, c)
	}
	return streams
}

// readToEnd reads every stream until the server ends it.
func readToEnd(streams []*eventClient) {
	var wg sync.WaitGroup
	for _, c := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := c.next(); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// readAll reads a stream of a finished deployment to its end.
func readAll(t *testing.T, url, tok, id, query string, header ...string) []streamEvent {
	t.Helper()
	c, bad := openEvents(t, url, tok, id, query, header...)
	if bad != nil {
		t.Fatalf("open: %d %s", bad.status, bad.body)
	}
	defer c.close()
	var out []streamEvent
	for {
		e, err := c.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		out = append(out, e)
	}
}

func sameEvents(a, b []streamEvent) bool {
	return slices.EqualFunc(a, b, func(x, y streamEvent) bool {
		return x.ID == y.ID && x.Type == y.Type && fmt.Sprint(x.Data) == fmt.Sprint(y.Data)
	})
}

// A failed build's stream carries what it printed and ends with done
// failed and the error.
func TestEventsFailedDeployment(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "chatty")
	id := deployFiles(s, tok, "acme", "chatty", chattyBuild(5, 5, true)).str("deploymentId")
	c, bad := openEvents(t, s.url, tok, id, "")
	if bad != nil {
		t.Fatalf("open: %d %s", bad.status, bad.body)
	}
	got := c.readUntil(t, 2*time.Minute, isDone)
	c.close()
	checkGapFree(t, got, 1)
	done := got[len(got)-1]
	if done.str("status") != "failed" || done.str("error") == "" {
		t.Fatalf("done: %+v", done.Data)
	}
	msgs := eventLogMessages(got)
	if !slices.Equal(chattyLines(msgs), seq(5)) || !slices.ContainsFunc(msgs, func(m string) bool { return m == "giving up on purpose" }) {
		t.Fatalf("log events: %q", msgs)
	}
	failed := false
	for _, e := range got {
		failed = failed || e.Type == "step" && e.str("step") == "build" && e.str("status") == "failed" && e.str("error") != ""
	}
	if !failed {
		t.Fatal("no step event says the build failed")
	}
}

// An org holds at most 20 streams on a server; the 21st is refused with
// 429 and a closed one frees its place. Shutting the server down ends
// every stream at once, though the build they follow still runs.
func TestEventsStreamCapAndShutdown(t *testing.T) {
	// The token's rate limit must not be what refuses the retries below. A
	// short grace: the streams must end at once, while the build still runs,
	// and the server then stops its build well before the harness's own
	// stop deadline (a longer grace once left the build's cgroup busy).
	s := startServer(t, "SHUTDOWN_GRACE=2s", "RATE_LIMIT_RPS=1000000", "RATE_LIMIT_BURST=1000000")
	tok := s.setup("acme", "app")
	id := deployFiles(s, tok, "acme", "app", slowBuild(60_000, "slow")).str("deploymentId")
	streams := openStreams(t, s, tok, id, 20)
	_, bad := openEvents(t, s.url, tok, id, "")
	if bad == nil {
		t.Fatal("a 21st stream was opened")
	}
	wantCode(t, *bad, 429, "RATE_LIMITED")
	if !strings.Contains(bad.str("message"), "event streams") {
		t.Fatalf("429 for another reason: %s", bad.body)
	}
	streams[0].close()
	var c *eventClient
	for range 50 { // the server sees the close soon, not at once
		if c, bad = openEvents(t, s.url, tok, id, ""); bad == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bad != nil {
		t.Fatalf("a freed place stays taken: %d %s", bad.status, bad.body)
	}
	streams[0] = c
	s.waitFor(id, time.Minute, func(r response) bool { return stepStatus(r, "build") == "in_progress" })

	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	readToEnd(streams)
	took := time.Since(start)
	t.Logf("20 streams ended %s after SIGTERM", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Fatalf("streams ended %s after SIGTERM; the shutdown must end them at once", took)
	}
	// Let the server end its build and exit: killed mid-shutdown, it would
	// leave the build's processes in their cgroup.
	if err := s.stop(30 * time.Second); err != nil {
		t.Logf("stop after SIGTERM: %v", err)
	}
}

// Deployments accepted before events were stored (migration 0007) replay a
// synthesised stream: their stored lines, their status and done, numbered
// from 1, the same on every replay. One made final without its done (the
// reaper failing a lost job writes no events) ends with a done after its
// last stored event.
func TestEventsReplayWithoutStoredEvents(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "site")
	var ids []string
	for range 2 {
		r := s.deploy(tok, staticSite("acme", "site", 2))
		if r.status != 202 {
			t.Fatalf("deploy: %d %s", r.status, r.body)
		}
		ids = append(ids, r.str("deploymentId"))
	}
	legacy, reaped := ids[0], ids[1]
	stored := logMessages(s.waitFinal(legacy, time.Minute))
	s.waitFinal(reaped, time.Minute)
	whole := readAll(t, s.url, tok, reaped, "")
	execSQL(t, s, `DELETE FROM deployment_events WHERE deployment_id = '`+legacy+`'`)
	execSQL(t, s, `DELETE FROM deployment_events WHERE deployment_id = '`+reaped+`' AND type = 'done'`)

	got := readAll(t, s.url, tok, legacy, "")
	checkGapFree(t, got, 1)
	if msgs := eventLogMessages(got); len(msgs) == 0 || !slices.Equal(msgs, stored) {
		t.Fatalf("synthesised log events %q, stored %q", msgs, stored)
	}
	status, done := got[len(got)-2], got[len(got)-1]
	if status.Type != "status" || status.str("status") != "completed" || status.Data["progress"] != 100.0 ||
		done.str("status") != "completed" || done.str("url") == "" {
		t.Fatalf("synthesised tail: %+v %+v", status, done)
	}
	if again := readAll(t, s.url, tok, legacy, ""); !sameEvents(again, got) {
		t.Fatal("a second replay differs: synthesised ids must be stable")
	}
	if tail := readAll(t, s.url, tok, legacy, "?since="+strconv.Itoa(len(got)-2)); !sameEvents(tail, got[len(got)-2:]) {
		t.Fatalf("resumed synthesised replay: %+v", tail)
	}

	got = readAll(t, s.url, tok, reaped, "")
	checkGapFree(t, got, 1)
	if !sameEvents(got, whole) {
		t.Fatalf("a deployment without its stored done replays\n%+v\nnot\n%+v", got, whole)
	}
}
