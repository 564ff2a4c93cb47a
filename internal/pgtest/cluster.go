package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// cluster is one running PostgreSQL server in dir: data in dir/data, the
// socket in dir itself, the server's log in dir/log.
type cluster struct {
	bin      string
	dir      string
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
	return "", errors.New("neither pg_config --bindir nor /usr/lib/postgresql/*/bin has initdb")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func start() (*cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	// A short path: a unix socket's path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "pgt")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir}
	if err := c.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.startWatchdog(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// init makes and starts the cluster. initdb refuses to run as root, so as
// root the directory goes to the postgres user and both programs run as it.
func (c *cluster) init() error {
	if os.Geteuid() == 0 {
		if err := chownToPostgres(c.dir); err != nil {
			return err
		}
	}
	data := filepath.Join(c.dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	// Durability is not under test here; fsync off makes CREATE DATABASE
	// and every commit cheap on a shared machine.
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300", c.dir)
	if out, err := c.run("pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "log"), "-w", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
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
func (c *cluster) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	cmd := exec.Command(path, args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return cmd.CombinedOutput()
}

// startWatchdog starts a shell that outlives this process: when the test
// binary dies without calling stop (a panic, a -timeout, a kill), it stops
// the server and removes the directory.
func (c *cluster) startWatchdog() error {
	pgctl := filepath.Join(c.bin, "pg_ctl")
	if os.Geteuid() == 0 {
		pgctl = "runuser -u postgres -- " + pgctl
	}
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done; %s -D '%s/data' -m immediate stop >/dev/null 2>&1; rm -rf '%s'`,
		os.Getpid(), pgctl, c.dir, c.dir)
	cmd := exec.Command("sh", "-c", script)
	// Its own process group: signals meant for the test's group spare it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start watchdog: %w", err)
	}
	c.watchdog = cmd
	return nil
}

// stop stops the server at once and removes its directory.
func (c *cluster) stop() error {
	if c.watchdog != nil {
		c.watchdog.Process.Kill()
		c.watchdog.Wait()
	}
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("stop PostgreSQL in %s: %v: %s", c.dir, err, out)
	}
	return nil
}
