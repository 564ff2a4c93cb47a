// Package pgtest runs a throwaway PostgreSQL server for tests: one cluster
// per test process (internal/localpg), started on first use in a temporary
// directory, reached through a unix socket there (no TCP port to collide
// on), and removed when the process ends, also when it dies (localpg's
// watchdog). Each test gets its own
// database, a copy of a migrated template, which PostgreSQL makes in tens of
// milliseconds.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without PostgreSQL installed a test that asks for a database is skipped
// with a message saying so, except under CI (CI=true), where it fails: CI
// must not pass by skipping the very tests it installed PostgreSQL for.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/localpg"
)

// Prepare brings an empty database at url to the schema tests start from.
type Prepare func(ctx context.Context, url string) error

var (
	startOnce   sync.Once
	current     *localpg.Server
	startErr    error
	templateMu  sync.Mutex
	templated   bool
	templateErr error
	dbSeq       atomic.Int64
)

// Main runs the tests and then stops the cluster, if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if current != nil {
		if err := current.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	return code
}

// durabilityOff: durability is not under test here; fsync off makes CREATE
// DATABASE and every commit cheap on a shared machine.
var durabilityOff = []string{"fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300"}

func server(t testing.TB) *localpg.Server {
	t.Helper()
	startOnce.Do(func() {
		current, startErr = localpg.Start(localpg.Options{Settings: durabilityOff, StopMode: "immediate"})
	})
	if startErr == nil {
		return current
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL is required under CI: %v", startErr)
	}
	t.Skipf("skipping: no PostgreSQL to test against (%v); install PostgreSQL 15 (apt-get install postgresql) to run this test", startErr)
	return nil
}

// Database returns the URL of a new database for this test, made from the
// template that prepare migrated (prepare runs once per process; later
// calls' prepare is not used). It is dropped when the test ends.
func Database(t testing.TB, prepare Prepare) string {
	t.Helper()
	c := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ensureTemplate(ctx, c, prepare); err != nil {
		t.Fatalf("pgtest: template: %v", err)
	}
	return create(t, c, "migrated")
}

// Empty returns the URL of a new database with no tables at all.
func Empty(t testing.TB) string {
	t.Helper()
	return create(t, server(t), "template0")
}

// ensureTemplate makes the template once; a failure is kept and returned
// to every later test rather than retried against a half-made database.
func ensureTemplate(ctx context.Context, c *localpg.Server, prepare Prepare) error {
	templateMu.Lock()
	defer templateMu.Unlock()
	if !templated {
		templated = true
		templateErr = makeTemplate(ctx, c, prepare)
	}
	return templateErr
}

func makeTemplate(ctx context.Context, c *localpg.Server, prepare Prepare) error {
	if err := c.Exec(ctx, `CREATE DATABASE migrated`); err != nil {
		return err
	}
	if err := prepare(ctx, c.URL("migrated")); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

func create(t testing.TB, c *localpg.Server, template string) string {
	t.Helper()
	name := fmt.Sprintf("t%d", dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, template)); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a server the test started may still hold connections.
		if err := c.Exec(ctx, fmt.Sprintf(`DROP DATABASE %s WITH (FORCE)`, name)); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c.URL(name)
}
