package workflow

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// maxLogLines caps what one deployment writes to the database; a build that
// prints without end must not fill the disk.
const maxLogLines = 10_000

// logBuffer gathers a deployment's log lines and writes them in batches: one
// transaction per line would starve SQLite's single writer during a chatty
// build. It flushes every flushEvery, when the batch is large, and whenever
// the deployment's state is saved.
type logBuffer struct {
	// base is the context of background flushes: the run's, without its
	// cancellation, so that they carry its lease.
	base   context.Context
	store  libra.Store
	id     string
	logger *slog.Logger

	mu      sync.Mutex
	pending []libra.LogEntry
	written int
	dropped int
	secrets []string
	// redactor replaces every secret in one pass over a line; rebuilt by
	// Redact, which runs a few times per deployment, not per line.
	redactor *strings.Replacer

	stop chan struct{}
	done chan struct{}
}

// flushEvery bounds how long a printed line waits before followers of the
// deployment's events can see it (issue 10: within 250 ms of printing). A
// flush is one small transaction, and only a buffer with lines in it makes
// one: a chatty build costs at most 20 a second.
const flushEvery = 50 * time.Millisecond

func newLogBuffer(base context.Context, store libra.Store, id string, logger *slog.Logger) *logBuffer {
	b := &logBuffer{base: base, store: store, id: id, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop()
	return b
}

func (b *logBuffer) loop() {
	defer close(b.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.Flush(b.base)
		}
	}
}

// Redact replaces each of secrets with "[REDACTED]" in every later line.
func (b *logBuffer) Redact(secrets ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range secrets {
		if len(s) >= 4 {
			b.secrets = append(b.secrets, s)
		}
	}
	// Longest first: where two secrets start at the same place (one
	// contains the other) the Replacer takes the first listed, so the
	// longer is replaced whole rather than its tail left in clear.
	slices.SortStableFunc(b.secrets, func(x, y string) int { return len(y) - len(x) })
	pairs := make([]string, 0, 2*len(b.secrets))
	for _, s := range b.secrets {
		pairs = append(pairs, s, "[REDACTED]")
	}
	b.redactor = strings.NewReplacer(pairs...)
}

// redact hides the known secrets in line.
func (b *logBuffer) redact(line string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.redactLocked(line)
}

func (b *logBuffer) redactLocked(line string) string {
	if b.redactor == nil {
		return line
	}
	return b.redactor.Replace(line)
}

// Add appends a line.
func (b *logBuffer) Add(step libra.Step, level, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written+len(b.pending) >= maxLogLines {
		b.dropped++
		return
	}
	msg = b.redactLocked(msg)
	if len(msg) > 4096 {
		msg = msg[:4096] + "…"
	}
	b.pending = append(b.pending, libra.LogEntry{Time: libra.Now(), Step: step, Level: level, Message: msg})
}

// Take removes and returns the pending lines, for a caller that writes them
// together with the deployment's state.
func (b *logBuffer) Take() []libra.LogEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	batch := b.pending
	b.pending = nil
	b.written += len(batch)
	return batch
}

// Flush writes the pending lines. A failed write is logged and the lines are
// dropped: logs must never fail a deployment.
func (b *logBuffer) Flush(ctx context.Context) {
	batch := b.Take()
	if len(batch) == 0 {
		return
	}
	if err := b.store.AppendLogs(ctx, b.id, batch); err != nil {
		b.logger.Error("write deployment logs", "deployment", b.id, "lines", len(batch), "err", err)
	}
}

// Close stops the background flushing and writes what is left.
func (b *logBuffer) Close(ctx context.Context) {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	if b.dropped > 0 {
		b.pending = append(b.pending, libra.LogEntry{Time: libra.Now(), Step: libra.StepCleanup, Level: "warn",
			Message: fmt.Sprintf("%d log lines were dropped: the log is capped at %d lines", b.dropped, maxLogLines)})
		b.dropped = 0
	}
	b.mu.Unlock()
	b.Flush(ctx)
}
