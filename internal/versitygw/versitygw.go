// Package versitygw runs versitygw, an S3-compatible server, as a child
// process on its posix backend: the test harness internal/s3test and the
// `libra-deploy cluster` command find it the same way. The binary is looked
// up, never built here (a cold build takes minutes): $VERSITYGW, then PATH,
// then $(go env GOPATH)/bin.
package versitygw

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Version is the versitygw release libra-deploy is tested against.
const Version = "v1.8.0"

// InstallHint is the command that installs the binary.
const InstallHint = "go install github.com/versity/versitygw/cmd/versitygw@" + Version

// ErrNotFound says the binary is in none of the places looked at.
var ErrNotFound = errors.New("versitygw not found ($VERSITYGW, PATH, $(go env GOPATH)/bin); install it with: " + InstallHint)

// Binary returns the path of the versitygw binary, or ErrNotFound.
func Binary() (string, error) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	for _, dir := range filepath.SplitList(gopath()) {
		p := filepath.Join(dir, "bin", "versitygw")
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", ErrNotFound
}

func gopath() string {
	if p := os.Getenv("GOPATH"); p != "" {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go")
	}
	return ""
}

// Options say how one server runs.
type Options struct {
	Bin       string // empty: Binary()
	Dir       string // the posix backend's root: each bucket a directory
	Addr      string // HOST:PORT to listen on
	Region    string
	AccessKey string
	SecretKey string
	Output    io.Writer // its stdout and stderr; nil: discarded
}

// Server is one running versitygw.
type Server struct {
	Endpoint string // http://HOST:PORT
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start runs versitygw and returns once it accepts connections.
func Start(opts Options) (*Server, error) {
	bin := opts.Bin
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, err
		}
	}
	// Something else on the address would answer the wait below in
	// versitygw's place.
	if err := addrFree(opts.Addr); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--access", opts.AccessKey, "--secret", opts.SecretKey, "--region", opts.Region,
		"--port", opts.Addr, "--quiet", "posix", opts.Dir)
	cmd.Stdout, cmd.Stderr = opts.Output, opts.Output
	// It must not outlive its starter, however that one ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	s := &Server{Endpoint: "http://" + opts.Addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := WaitListening(opts.Addr, s.done, 30*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("versitygw did not start: %w", err)
	}
	return s, nil
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Done is closed when the process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop sends SIGTERM and, after 5 s, SIGKILL; it returns once the process
// is gone.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// WaitListening waits until addr accepts a TCP connection, the process
// behind it exits (exited closes), or limit passes.
func WaitListening(addr string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("process exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listening on %s after %s", addr, limit)
}

func addrFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("versitygw's address %s: %w", addr, err)
	}
	return ln.Close()
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}
