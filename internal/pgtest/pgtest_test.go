package pgtest_test

import (
	"bufio"
	"context"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func noTemplate(context.Context, string) error { return nil }

// Each test's database is its own and starts from the template.
func TestDatabasesAreSeparate(t *testing.T) {
	ctx := context.Background()
	prepare := func(ctx context.Context, u string) error {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TABLE marker (n int); INSERT INTO marker VALUES (7)`)
		return err
	}
	a, b := pgtest.Database(t, prepare), pgtest.Database(t, prepare)
	if a == b {
		t.Fatalf("two tests got one database: %s", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO marker VALUES (8)`); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var n int
	if err := other.QueryRow(ctx, `SELECT count(*) FROM marker`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the other database has %d marker rows (%v), want the template's 1", n, err)
	}
}

// A test process that dies without cleaning up (here: os.Exit from inside
// a test, as a -timeout panic would) still leaves no server and no
// directory behind: the watchdog removes them.
func TestClusterRemovedWhenProcessDies(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		u := pgtest.Database(t, noTemplate)
		os.Stdout.WriteString("URL " + u + "\n")
		os.Exit(3)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestClusterRemovedWhenProcessDies$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PGTEST_CHILD=1")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("child: %v\n%s", err, out)
	}
	dir := socketDir(t, string(out))
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, statErr := os.Stat(dir)
		if os.IsNotExist(statErr) && !postmasterRunning(t, dir) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the test process died, %s is still there (stat: %v) or its server still runs", dir, statErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the dead process's cluster in %s was stopped and removed", dir)
}

func socketDir(t *testing.T, out string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			u, err := url.Parse(rest)
			if err != nil {
				t.Fatal(err)
			}
			return u.Query().Get("host")
		}
	}
	t.Fatalf("the child printed no URL:\n%s", out)
	return ""
}

// postmasterRunning reports whether a postgres process works on dir.
func postmasterRunning(t *testing.T, dir string) bool {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), "postgres") && strings.Contains(string(cmdline), dir) {
			return true
		}
	}
	return false
}
