package libra

import (
	"context"
	"io"
	"time"
)

// SandboxProvider makes isolated environments for untrusted install and build
// commands. Providers: "local" (bubblewrap on this host) and remote ones.
type SandboxProvider interface {
	// Name is the provider's configuration name, e.g. "local".
	Name() string
	// Check reports whether builds can run here at all; /health shows it.
	Check(ctx context.Context) error
	// Create prepares a sandbox holding a copy of (or, for the local provider,
	// a bind of) the working directory opts.WorkDir.
	Create(ctx context.Context, opts SandboxOptions) (Sandbox, error)
}

// SandboxOptions describes the sandbox one deployment needs.
type SandboxOptions struct {
	DeploymentID string
	OrgID        string
	// WorkDir is the host directory that sync assembled.
	WorkDir string
}

// Sandbox is one deployment's isolated environment.
type Sandbox interface {
	// Run runs cmd inside the sandbox. A command that ran and exited non-zero
	// returns its exit code and a nil error; err is for failing to run it.
	Run(ctx context.Context, cmd Command) (exitCode int, err error)
	// ReadFiles calls fn for each regular file under dir (relative to the
	// project root). Symlinks and special files are skipped, never followed.
	ReadFiles(ctx context.Context, dir string, fn func(path string, size int64, r io.Reader) error) error
	// Destroy releases everything the sandbox holds. It is safe to call twice.
	Destroy(ctx context.Context) error
}

// Command is one process to run in a sandbox.
type Command struct {
	Args []string
	// Env is added to the sandbox's fixed, minimal environment.
	Env map[string]string
	// Network allows reaching the package registries (install phase only).
	Network bool
	Timeout time.Duration
	// Output receives each line of combined stdout and stderr as it is written.
	Output func(line string)
}
