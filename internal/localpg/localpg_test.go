package localpg_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/libra-deploy/libra-deploy/internal/localpg"
)

func start(t *testing.T, opts localpg.Options) *localpg.Server {
	t.Helper()
	s, err := localpg.Start(opts)
	if err != nil {
		if _, binErr := localpg.BinDir(); binErr != nil && os.Getenv("CI") != "true" {
			t.Skipf("no PostgreSQL installed: %v", binErr)
		}
		t.Fatal(err)
	}
	return s
}

// A directory the caller names is kept: a second Start on it finds the
// first one's rows, and Stop leaves the directory but no server.
func TestKeptDirectoryKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "lpg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s := start(t, localpg.Options{Dir: dir})
	for range 2 { // the second call finds the database and does nothing
		if err := s.EnsureDatabase(ctx, "libra"); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, s.URL("libra"), `CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)`)
	pid, err := s.PID()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// pg_ctl returns once the pid file is gone, a moment before the
	// postmaster's own exit.
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still runs 10 s after Stop", pid)
		}
	}
	s = start(t, localpg.Options{Dir: dir})
	defer s.Stop()
	var n int
	conn, err := pgx.Connect(ctx, s.URL("libra"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT n FROM kept`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("after a restart on the kept directory: n=%d, %v", n, err)
	}
}

// A temporary directory is removed by Stop.
func TestTemporaryDirectoryRemoved(t *testing.T) {
	s := start(t, localpg.Options{StopMode: "immediate"})
	dir := s.Dir()
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Fatalf("no cluster in %s: %v", dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Stop: %v", dir, err)
	}
}

// A directory whose socket path cannot fit is refused before initdb runs.
func TestLongDirectoryRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	_, err := localpg.Start(localpg.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "unix socket would not fit") {
		t.Fatalf("Start on a %d-byte directory: %v", len(dir), err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(statErr) {
		t.Errorf("refused Start left %s/data: %v", dir, statErr)
	}
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}
