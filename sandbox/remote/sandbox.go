package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/buildfile"
)

// Backend is one provider's sandbox, as Sandbox needs it. Paths are
// relative to the sandbox user's home directory, which both providers
// resolve them against.
type Backend interface {
	// Upload writes data to the file at p.
	Upload(ctx context.Context, p string, data []byte) error
	// Download streams the file at p.
	Download(ctx context.Context, p string) (io.ReadCloser, error)
	// Exec runs a bash script, passing its combined output as it comes.
	// A script that ran and exited non-zero returns its code and nil.
	Exec(ctx context.Context, script string, output io.Writer) (int, error)
	// Delete removes the sandbox at the provider.
	Delete(ctx context.Context) error
}

// Names inside the sandbox, relative to its user's home.
const (
	ProjectDir  = "libra-project"
	srcArchive  = "libra-src.tar.gz"
	syncArchive = "libra-sync.tar.gz"
)

// DefaultMaxSyncBytes caps what one command's files bring back to this host.
const DefaultMaxSyncBytes = 2 << 30

// Sandbox is a libra.Sandbox on a remote Backend. Commands run one at a
// time; after each one that succeeds, the project (without node_modules)
// comes back as one archive, so that the steps read the build's output and
// lockfile on this host as they do after a local build.
type Sandbox struct {
	b        Backend
	provider string
	workDir  string
	maxSync  int64

	mu        sync.Mutex
	destroyed bool
}

// Open uploads workDir to b as one archive and extracts it inside, then
// returns the sandbox. On failure the remote sandbox is deleted.
func Open(ctx context.Context, provider string, b Backend, workDir string) (*Sandbox, error) {
	s := &Sandbox{b: b, provider: provider, workDir: workDir, maxSync: DefaultMaxSyncBytes}
	if err := s.upload(ctx); err != nil {
		_ = s.Destroy(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

func (s *Sandbox) upload(ctx context.Context) error {
	data, err := Pack(s.workDir)
	if err != nil {
		return err
	}
	if err := s.b.Upload(ctx, srcArchive, data); err != nil {
		return fmt.Errorf("upload the project to %s: %w", s.provider, err)
	}
	script := fmt.Sprintf("rm -rf %[1]s && mkdir -p %[1]s && tar -xzf %[2]s -C %[1]s && rm -f %[2]s", ProjectDir, srcArchive)
	return s.housekeeping(ctx, "extract the project", script)
}

// housekeeping runs one of our own scripts; its failure is the platform's.
func (s *Sandbox) housekeeping(ctx context.Context, what, script string) error {
	var out bytes.Buffer
	code, err := s.b.Exec(ctx, script, &limitedBuffer{buf: &out, max: 4096})
	if err != nil {
		return fmt.Errorf("%s in %s: %w", what, s.provider, err)
	}
	if code != 0 {
		return fmt.Errorf("%s in %s: exit code %d: %s", what, s.provider, code, strings.TrimSpace(out.String()))
	}
	return nil
}

// Run runs c in the project directory. Its timeout ends the run with an
// error that is context.DeadlineExceeded, which the build step reports as
// the build's own timeout.
func (s *Sandbox) Run(ctx context.Context, c libra.Command) (int, error) {
	script, err := Script(c)
	if err != nil {
		return -1, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return -1, errors.New("sandbox: destroyed")
	}
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if c.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	defer cancel()
	lines := NewLineWriter(c.Output)
	code, err := s.b.Exec(runCtx, script, lines)
	lines.Flush()
	if err != nil {
		if runCtx.Err() != nil {
			return -1, fmt.Errorf("%s sandbox: %w", s.provider, runCtx.Err())
		}
		return -1, err
	}
	if code == 0 {
		if err := s.syncBack(ctx); err != nil {
			return -1, err
		}
	}
	return code, nil
}

// syncBack replaces the project on this host with the sandbox's copy,
// except the dependencies, which stay in the sandbox.
func (s *Sandbox) syncBack(ctx context.Context) error {
	// Dependencies at any depth (workspaces have their own) stay behind.
	script := fmt.Sprintf("tar -czf %s --exclude=node_modules --exclude=.git -C %s .", syncArchive, ProjectDir)
	if err := s.housekeeping(ctx, "archive the project", script); err != nil {
		return err
	}
	rc, err := s.b.Download(ctx, syncArchive)
	if err != nil {
		return fmt.Errorf("download the project from %s: %w", s.provider, err)
	}
	defer rc.Close()
	if err := clearExceptDeps(s.workDir); err != nil {
		return err
	}
	if err := Unpack(rc, s.workDir, s.maxSync); err != nil {
		if errors.Is(err, ErrArchiveTooLarge) {
			return libra.Permanent(libra.Errorf(libra.CodeBuildFailed, "the build's files exceed %d MiB", s.maxSync>>20))
		}
		return err
	}
	return nil
}

// clearExceptDeps empties dir but for node_modules and .git, so that a
// file the build deleted in the sandbox is gone here too.
func clearExceptDeps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clear the project: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("clear the project: %w", err)
	}
	defer root.Close()
	for _, e := range entries {
		if e.Name() == "node_modules" || e.Name() == ".git" {
			continue
		}
		if err := root.RemoveAll(e.Name()); err != nil {
			return fmt.Errorf("clear the project: %w", err)
		}
	}
	return nil
}

// ReadFiles reads dir from this host's copy, which the last command's
// sync made the sandbox's: regular files only, never following a link.
func (s *Sandbox) ReadFiles(ctx context.Context, dir string, fn func(p string, size int64, r io.Reader) error) error {
	full := path.Join(s.workDir, dir)
	root, err := os.OpenRoot(full)
	if err != nil {
		return fmt.Errorf("open output: %w", err)
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		f, err := buildfile.Open(ctx, full, p, -1)
		if errors.Is(err, buildfile.ErrNotRegular) || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		defer f.Close()
		return fn(p, f.Size, f)
	})
}

// deleteTries is how often Destroy asks before it gives up: a sandbox left
// running costs money until the provider's own timeout ends it.
const deleteTries = 3

// Destroy deletes the remote sandbox, asking again after a passing fault.
// A failed delete can be tried again.
func (s *Sandbox) Destroy(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return nil
	}
	var err error
	for try := range deleteTries {
		if err = s.b.Delete(ctx); err == nil || libra.IsPermanent(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try+1) * 500 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("delete the %s sandbox: %w", s.provider, err)
	}
	s.destroyed = true
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
