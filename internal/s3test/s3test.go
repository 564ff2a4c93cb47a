// Package s3test runs versitygw, an S3-compatible server, as a real process
// for tests: its posix backend in a temporary directory, on a free port of
// 127.0.0.1, with one bucket. versitygw enforces SigV4, checksums and
// conditional writes as S3 does, which is what the artifact store relies on.
//
// The binary is looked up, never built here (a cold build takes minutes):
// $VERSITYGW, then PATH, then $(go env GOPATH)/bin. .ci/run installs it;
// without it a test fails under CI (CI=true) and is skipped, saying how to
// install it, elsewhere.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	artifacts3 "github.com/libra-deploy/libra-deploy/artifact/s3"
	"github.com/libra-deploy/libra-deploy/internal/versitygw"
)

// Version is the versitygw release the tests are written against.
const Version = versitygw.Version

// InstallHint is the command that installs the binary.
const InstallHint = versitygw.InstallHint

// Server is one running versitygw with one bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string

	t    testing.TB
	dir  string
	args []string
	bin  string

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{}

	logMu sync.Mutex // separate: the process writes while Restart waits
	logs  strings.Builder
}

// Binary returns the versitygw binary, or ends the test: Fatal under CI,
// Skip elsewhere.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := versitygw.Binary()
	if err == nil {
		return p
	}
	msg := err.Error()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start runs versitygw with a new bucket; the test's cleanup stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	port, err := versitygw.FreePort()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s := &Server{
		Endpoint:  "http://127.0.0.1:" + port,
		Region:    "us-east-1",
		AccessKey: "libratest" + randomHex(4),
		SecretKey: randomHex(20),
		Bucket:    "libra-" + randomHex(4),
		t:         t,
		dir:       t.TempDir(),
		bin:       bin,
	}
	s.args = []string{"--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", "127.0.0.1:" + port, "--quiet", "posix", s.dir}
	t.Cleanup(s.Stop)
	s.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client(ctx).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		t.Fatalf("s3test: create bucket: %v\n%s", err, s.Logs())
	}
	return s
}

// Restart starts the process again after Stop, on the same port and data.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("s3test: Restart while running")
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = &syncWriter{mu: &s.logMu, b: &s.logs}, &syncWriter{mu: &s.logMu, b: &s.logs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("s3test: start versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	addr := strings.TrimPrefix(s.Endpoint, "http://")
	if err := versitygw.WaitListening(addr, done, 30*time.Second); err != nil {
		s.t.Fatalf("s3test: versitygw did not start: %v", err)
	}
}

// Stop ends the process; the data stays for Restart. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Logs returns what the process printed.
func (s *Server) Logs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logs.String()
}

// Store returns an artifact store on the bucket under prefix.
func (s *Server) Store(ctx context.Context, prefix string) *artifacts3.Store {
	s.t.Helper()
	st, err := artifacts3.New(ctx, artifacts3.Options{
		Bucket: s.Bucket, Prefix: prefix, Endpoint: s.Endpoint, Region: s.Region,
		AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey, TempDir: s.t.TempDir(),
	})
	if err != nil {
		s.t.Fatalf("s3test: %v", err)
	}
	return st
}

// Client returns an S3 client with the server's root credentials.
func (s *Server) Client(ctx context.Context) *s3.Client { return s.Store(ctx, "").Client() }

// Env returns the libra-deploy settings that put its artifacts in the
// bucket under prefix.
func (s *Server) Env(prefix string) []string {
	return []string{
		"ARTIFACT_STORE=s3://" + s.Bucket + "/" + strings.Trim(prefix, "/"),
		"S3_ENDPOINT=" + s.Endpoint,
		"S3_REGION=" + s.Region,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
	}
}

// Dir is the posix backend's root: the bucket is a directory in it, and
// each object a file, which tests may damage on purpose.
func (s *Server) Dir() string { return s.dir }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncWriter lets the process's output and Logs share one lock.
type syncWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
