// Package localpg runs a PostgreSQL server from the machine's own packages
// (Debian's postgresql) as a child of this process: the test harness
// internal/pgtest and the `libra-deploy cluster` command both use it. The
// server listens on a unix socket in its directory only, so no TCP port can
// collide, and a watchdog stops it when the process that started it dies
// without calling Stop.
package localpg

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// maxSocketDir keeps the socket's path (dir + "/.s.PGSQL.5432") inside the
// 107 bytes a unix socket address holds.
const maxSocketDir = 107 - len("/.s.PGSQL.5432")

// Options say where and how a server runs.
type Options struct {
	// Dir holds the data (Dir/data), the socket and the log (Dir/log).
	// Empty: a new temporary directory that Stop removes. Given: it is
	// kept, and a later Start on it reuses the data.
	Dir string
	// Settings are extra `-c name=value` server settings.
	Settings []string
	// StopMode is pg_ctl's shutdown mode: "fast" (default) or "immediate".
	StopMode string
}

// Server is one running PostgreSQL server.
type Server struct {
	bin      string
	dir      string
	keep     bool
	stopMode string
	watchdog *exec.Cmd
}

// BinDir finds PostgreSQL's server programs: pg_config knows where they
// are; Debian's layout is the fallback (newest version first).
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isFile(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", errors.New("neither pg_config --bindir nor /usr/lib/postgresql/*/bin has initdb; install PostgreSQL (apt-get install -y postgresql)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Start initialises (when new) and starts a server.
func Start(opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: opts.Dir, keep: opts.Dir != "", stopMode: opts.StopMode}
	if s.stopMode == "" {
		s.stopMode = "fast"
	}
	if err := s.makeDir(); err != nil {
		return nil, err
	}
	if err := s.init(opts.Settings); err != nil {
		s.removeDir()
		return nil, err
	}
	if err := s.startWatchdog(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) makeDir() error {
	if !s.keep {
		// A short path under the temporary directory: see maxSocketDir.
		dir, err := os.MkdirTemp("", "pgt")
		if err != nil {
			return fmt.Errorf("make PostgreSQL's directory: %w", err)
		}
		s.dir = dir
	} else if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("make PostgreSQL's directory: %w", err)
	}
	abs, err := filepath.Abs(s.dir)
	if err != nil {
		return fmt.Errorf("PostgreSQL's directory: %w", err)
	}
	s.dir = abs
	if len(abs) > maxSocketDir {
		return fmt.Errorf("PostgreSQL's directory %s is longer than %d bytes: its unix socket would not fit; choose a shorter directory", abs, maxSocketDir)
	}
	if os.Geteuid() == 0 {
		return postgresCanReach(filepath.Dir(abs))
	}
	return nil
}

// postgresCanReach fails clearly, before initdb fails obscurely, when the
// postgres user cannot reach dir (a parent like a test's 0700 temporary
// directory, or /root).
func postgresCanReach(dir string) error {
	out, err := exec.Command("runuser", "-u", "postgres", "--", "test", "-x", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("the postgres user cannot reach %s (initdb refuses root, so PostgreSQL runs as postgres): make every directory on the path searchable by others (chmod o+x) or choose one under /tmp: %w %s", dir, err, out)
	}
	return nil
}

func (s *Server) removeDir() {
	if !s.keep {
		os.RemoveAll(s.dir)
	}
}

// init makes (unless it exists) and starts the cluster. initdb refuses to
// run as root, so as root the directory goes to the postgres user and both
// programs run as it.
func (s *Server) init(settings []string) error {
	if os.Geteuid() == 0 {
		if err := chownToPostgres(s.dir); err != nil {
			return err
		}
	}
	data := filepath.Join(s.dir, "data")
	if !isFile(filepath.Join(data, "PG_VERSION")) {
		if out, err := s.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"); err != nil {
			return fmt.Errorf("initdb: %w: %s", err, out)
		}
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses=''", s.dir)
	for _, kv := range settings {
		opts += " -c " + kv
	}
	logPath := filepath.Join(s.dir, "log")
	if out, err := s.run("pg_ctl", "-D", data, "-l", logPath, "-w", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, log)
	}
	return nil
}

func chownToPostgres(dir string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("initdb refuses root and there is no postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	return nil
}

// run runs one of PostgreSQL's programs, as the postgres user when root.
func (s *Server) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, prog)
	cmd := exec.Command(path, args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return cmd.CombinedOutput()
}

// startWatchdog starts a shell that outlives this process: when it dies
// without calling Stop (a panic, a test's -timeout, a SIGKILL), the shell
// stops the server and removes a temporary directory.
func (s *Server) startWatchdog() error {
	pgctl := filepath.Join(s.bin, "pg_ctl")
	if os.Geteuid() == 0 {
		pgctl = "runuser -u postgres -- " + pgctl
	}
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done; %s -D '%s/data' -m immediate stop >/dev/null 2>&1`,
		os.Getpid(), pgctl, s.dir)
	if !s.keep {
		script += fmt.Sprintf("; rm -rf '%s'", s.dir)
	}
	cmd := exec.Command("sh", "-c", script)
	// Its own process group: signals meant for its parent's group spare it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start watchdog: %w", err)
	}
	s.watchdog = cmd
	return nil
}

// Stop stops the server and, unless Options.Dir named it, removes its
// directory.
func (s *Server) Stop() error {
	if s.watchdog != nil {
		// The whole group: the shell and the sleep it may be waiting on,
		// which would otherwise linger for up to a second.
		_ = syscall.Kill(-s.watchdog.Process.Pid, syscall.SIGKILL)
		_ = s.watchdog.Wait()
	}
	out, err := s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", s.stopMode, "-w", "stop")
	if !s.keep {
		if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
			err = rmErr
		}
	}
	if err != nil {
		return fmt.Errorf("stop PostgreSQL in %s: %w: %s", s.dir, err, out)
	}
	return nil
}

// Dir is the server's directory: data/, log and the socket.
func (s *Server) Dir() string { return s.dir }

// PID is the postmaster's process id, from its pid file.
func (s *Server) PID() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

// URL names a database of the server, reached through its socket.
func (s *Server) URL(db string) string {
	q := url.Values{"host": {s.dir}, "sslmode": {"disable"}}
	return "postgres://postgres@/" + db + "?" + q.Encode()
}

// Exec runs one statement on the server's maintenance database.
func (s *Server) Exec(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// EnsureDatabase creates database name unless it exists (a kept directory
// already has it).
func (s *Server) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look for database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
