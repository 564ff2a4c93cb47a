package bwrap

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	libra "github.com/libra-deploy/libra-deploy"
)

// ErrTimeout is returned (wrapped) by Run when Command.Timeout expired and
// the command was killed. errors.Is(err, context.DeadlineExceeded) holds too.
var ErrTimeout = fmt.Errorf("sandbox: command timed out: %w", context.DeadlineExceeded)

// ErrStart is returned (wrapped) by Run when bubblewrap could not set the
// sandbox up, so the command never ran: a fault of the host, not the build.
var ErrStart = errors.New("sandbox: could not start")

// ErrDestroyed is returned by a sandbox's methods after Destroy.
var ErrDestroyed = errors.New("sandbox: destroyed")

// sandbox is one deployment's sandbox. Its methods are serialized: a sandbox
// runs one command at a time.
type sandbox struct {
	p         *Provider
	opts      libra.SandboxOptions
	uid       int
	name      string // "b<uid>": cgroup and directory name
	box       string // StateDir/boxes/<name>
	home      string
	cacheDir  string // host directory bound at CacheMount
	cacheKey  string // org cache key when cacheDir is the shared org cache
	cacheBase treeUsage
	workDir   string
	workOwner [2]int
	cg        cgroup

	// closing is set by Destroy before it waits for a running command, so
	// that no new command starts.
	closing atomic.Bool

	mu sync.Mutex
	// Progress of Destroy, so that a repeated call finishes what a failed
	// one left.
	destroyed   bool
	workChowned bool // the project is owned by the build uid
	cgRemoved   bool
	cacheDone   bool
	boxRemoved  bool
}

// limitNote explains in the build's own log why it was stopped.
type limitNote struct {
	mu     sync.Mutex
	reason string
}

func (n *limitNote) set(r string) {
	n.mu.Lock()
	if n.reason == "" {
		n.reason = r
	}
	n.mu.Unlock()
}

func (n *limitNote) get() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reason
}

// Run runs c in the sandbox. See libra.Sandbox. When a limit stops the
// command (memory, processes, disk), the exit code is non-zero, the error is
// nil, and a line starting with "sandbox:" in the output says which limit.
// A timeout returns an error wrapping ErrTimeout; a cancelled ctx returns an
// error wrapping ctx.Err(); a sandbox bwrap could not set up returns an
// error wrapping ErrStart. c.Output is called from one goroutine at a time
// and never after Run returns.
func (s *sandbox) Run(ctx context.Context, c libra.Command) (int, error) {
	if len(c.Args) == 0 || c.Args[0] == "" {
		return -1, errors.New("sandbox: empty command")
	}
	for _, a := range c.Args {
		if strings.ContainsRune(a, 0) {
			return -1, errors.New("sandbox: command argument contains NUL")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed || s.closing.Load() {
		return -1, ErrDestroyed
	}
	output := c.Output
	if output == nil {
		output = func(string) {}
	}
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if c.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	defer cancel()

	var sock string
	if c.Network {
		px, path, err := s.startProxy()
		if err != nil {
			return -1, err
		}
		defer func() {
			_ = px.Close()
			_ = os.Remove(path)
		}()
		sock = path
	}
	opts, err := s.sandboxArgs(c, sock)
	if err != nil {
		return -1, err
	}
	argv := commandLine(s.p.bwrap, c, c.Network, s.p.helperRlimits())
	return s.launch(ctx, runCtx, c, opts, argv, output)
}

// startProxy listens on a socket in the sandbox's directory, which is bound
// into the sandbox for the install phase only.
func (s *sandbox) startProxy() (*Proxy, string, error) {
	path := filepath.Join(s.box, "proxy.sock")
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", fmt.Errorf("sandbox: proxy socket: %w", err)
	}
	// Only this sandbox's uid may connect.
	if err := errors.Join(os.Chown(path, s.uid, s.uid), os.Chmod(path, 0o600)); err != nil {
		l.Close()
		return nil, "", fmt.Errorf("sandbox: proxy socket: %w", err)
	}
	px, err := NewProxy(s.p.proxy)
	if err == nil {
		err = px.Start(l)
	}
	if err != nil {
		l.Close()
		return nil, "", fmt.Errorf("sandbox: %w", err)
	}
	return px, path, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// ctxError explains why a command was stopped by its context.
func (s *sandbox) ctxError(ctx context.Context, c libra.Command) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sandbox: command stopped: %w", err)
	}
	return fmt.Errorf("%w (limit %s)", ErrTimeout, c.Timeout)
}

func writeAndClose(f *os.File, data []byte) {
	_, _ = f.Write(data)
	_ = f.Close()
}

// readChildPid reads bwrap's --info-fd JSON, written once the sandbox's
// first process exists.
func readChildPid(r io.Reader) (int, error) {
	var info struct {
		ChildPid int `json:"child-pid"`
	}
	data, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return 0, fmt.Errorf("read bwrap info: %w", err)
	}
	if len(data) == 0 {
		return 0, errors.New("bwrap exited before creating the sandbox")
	}
	if err := json.Unmarshal(data, &info); err != nil || info.ChildPid <= 0 {
		return 0, fmt.Errorf("bad bwrap info %q: %v", data, err)
	}
	return info.ChildPid, nil
}

// exitCode turns bwrap's end into the command's exit code. bwrap passes the
// command's status through (128+n for a signal); bwrap itself killed by the
// cgroup shows as a signal.
func exitCode(ps *os.ProcessState, waitErr error) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	if waitErr != nil {
		return -1
	}
	return ps.ExitCode()
}

// watchDisk measures the sandbox's disk use while a command runs and kills
// the command when it passes the limit. A walk that takes long is repeated
// less often: about 2.5 % of one core goes to measuring (a walk over a large
// node_modules slowed a Vite build by 12 % at a 5 % budget), but never less
// often than every maxDiskCheckInterval, so a build that first creates many
// files cannot widen the window for a fast writer without end.
const maxDiskCheckInterval = 6 * time.Second

func (s *sandbox) watchDisk(stop <-chan struct{}, note *limitNote) {
	interval := s.p.cfg.DiskCheckInterval
	for {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		t0 := time.Now()
		reason := s.diskExceeded()
		if spent := time.Since(t0) * 40; spent > s.p.cfg.DiskCheckInterval {
			interval = min(spent, max(maxDiskCheckInterval, s.p.cfg.DiskCheckInterval))
		} else {
			interval = s.p.cfg.DiskCheckInterval
		}
		if reason != "" {
			note.set(reason)
			_ = s.cg.kill()
			return
		}
	}
}

// diskExceeded returns why the sandbox is over its disk limits, or "".
func (s *sandbox) diskExceeded() string {
	var total treeUsage
	for _, d := range []string{s.workDir, s.home} {
		u, err := measureTree(d)
		if errors.Is(err, errTreeTooDeep) {
			return "sandbox: disk limit: directory tree too deep"
		}
		total = total.add(u)
	}
	cache, err := measureTree(s.cacheDir)
	if errors.Is(err, errTreeTooDeep) {
		return "sandbox: disk limit: directory tree too deep"
	}
	if s.cacheKey != "" {
		cache.bytes = max(0, cache.bytes-s.cacheBase.bytes)
		cache.files = max(0, cache.files-s.cacheBase.files)
	}
	total = total.add(cache)
	cfg := s.p.cfg
	switch {
	case total.bytes > cfg.DiskLimit:
		return fmt.Sprintf("sandbox: disk limit exceeded: %s used, limit %s", formatBytes(total.bytes), formatBytes(cfg.DiskLimit))
	case total.files > cfg.MaxFiles:
		return fmt.Sprintf("sandbox: file count limit exceeded: %d files, limit %d", total.files, cfg.MaxFiles)
	}
	return ""
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

// maxLine is the longest line passed to Output in one piece; longer lines
// (minified bundles echoed to the terminal) arrive in pieces.
const maxLine = 64 << 10

// readLines calls emit for each line of r, without its line ending.
func readLines(r io.Reader, emit func(string)) error {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			emit(string(line))
			continue
		}
		if len(line) > 0 {
			emit(strings.TrimRight(string(line), "\r\n"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ReadFiles calls fn for every regular file below dir, a path relative to
// the project. Symlinks, devices, fifos and sockets are skipped, never
// followed or opened; dir itself must not be or pass through a symlink.
func (s *sandbox) ReadFiles(ctx context.Context, dir string, fn func(path string, size int64, r io.Reader) error) error {
	if dir == "" {
		dir = "."
	}
	if !filepath.IsLocal(dir) && dir != "." {
		return fmt.Errorf("sandbox: read files: %q is not a path inside the project", dir)
	}
	dir = filepath.Clean(dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return ErrDestroyed
	}
	root, err := openTreeRoot(s.workDir)
	if err != nil {
		return fmt.Errorf("sandbox: read files: %w", err)
	}
	defer unix.Close(root)
	dfd, err := openBelow(root, dir)
	if err != nil {
		return fmt.Errorf("sandbox: read files: %w", err)
	}
	defer unix.Close(dfd)
	err = walkTree(dfd, func(dirfd int, name, rel string, st *unix.Stat_t) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil
		}
		// O_NONBLOCK: should a fifo have been swapped in since the stat,
		// opening it must not hang; fstat below then rejects it.
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %q: %w", rel, err)
		}
		f := os.NewFile(uintptr(fd), rel)
		defer f.Close()
		var fst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil {
			return fmt.Errorf("stat %q: %w", rel, err)
		}
		if fst.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil
		}
		return fn(rel, fst.Size, io.LimitReader(f, fst.Size))
	})
	if err != nil {
		return fmt.Errorf("sandbox: read files: %w", err)
	}
	return nil
}

// Destroy kills whatever still runs (a command in progress returns),
// removes the cgroup, gives the project and the cache back to the service's
// uid, deletes the sandbox's own directory and returns the build uid to the
// pool. A failed step is retried by the next call; once everything is done,
// further calls do nothing.
func (s *sandbox) Destroy(context.Context) error {
	// A command still running is killed first: it holds the lock until it
	// ends, and Destroy must not wait for a build to finish on its own.
	s.closing.Store(true)
	if s.cg != nil {
		_ = s.cg.kill()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.boxRemoved && s.destroyed {
		return nil
	}
	s.destroyed = true
	if !s.cgRemoved {
		if s.cg != nil {
			if err := s.cg.remove(); err != nil {
				// Processes of this uid may still be alive: nothing below is
				// safe to do, and the uid must not be reused.
				return fmt.Errorf("sandbox: destroy: %w", err)
			}
		}
		s.cgRemoved = true
	}
	var errs []error
	if s.workChowned {
		err := chownTree(s.workDir, s.workOwner[0], s.workOwner[1])
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			s.workChowned = false
		} else {
			errs = append(errs, fmt.Errorf("give the project back: %w", err))
		}
	}
	if !s.cacheDone {
		if err := s.releaseCache(); err != nil {
			errs = append(errs, err)
		} else {
			s.cacheDone = true
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(s.box); err != nil {
			errs = append(errs, err)
		} else {
			s.boxRemoved = true
			// Everything handed to the uid is back: a later holder has
			// nothing to take back. A stale record only costs it a walk.
			if err := s.p.slots[s.uid].record(nil); err != nil {
				s.p.cfg.Logger.Warn("sandbox destroyed, but its uid's record stays", "uid", s.uid, "err", err)
			}
			s.p.uids <- s.uid
			s.p.cfg.Logger.Debug("sandbox destroyed", "deployment", s.opts.DeploymentID, "uid", s.uid)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sandbox: destroy: %w", err)
	}
	return nil
}

// releaseCache hands the org cache back to root, or empties it when it grew
// past twice the disk limit (a cache is an optimisation; losing it is cheap).
func (s *sandbox) releaseCache() error {
	if s.cacheKey == "" {
		return nil
	}
	u, err := measureTree(s.cacheDir)
	if err != nil || u.bytes > 2*s.p.cfg.DiskLimit {
		if err := os.RemoveAll(s.cacheDir); err != nil {
			return fmt.Errorf("drop oversized cache: %w", err)
		}
	} else if err := chownTree(s.cacheDir, os.Geteuid(), os.Getegid()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("give the cache back: %w", err)
	}
	s.p.mu.Lock()
	delete(s.p.cachesInUse, s.cacheKey)
	s.p.mu.Unlock()
	return nil
}

func ownerOf(fi os.FileInfo) [2]int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]int{int(st.Uid), int(st.Gid)}
	}
	return [2]int{os.Geteuid(), os.Getegid()}
}

// killUID SIGKILLs every process whose real, effective or saved uid is uid.
// Build uids are exclusive to one sandbox, so this reaches exactly its
// processes, cgroup or not.
func killUID(uid int) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	var errs []error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue // gone
		}
		for line := range strings.Lines(string(status)) {
			rest, ok := strings.CutPrefix(line, "Uid:")
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			for _, id := range f[:min(3, len(f))] {
				if id == strconv.Itoa(uid) {
					errs = append(errs, killPid(pid))
					break
				}
			}
			break
		}
	}
	return errors.Join(errs...)
}
