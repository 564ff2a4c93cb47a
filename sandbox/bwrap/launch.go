package bwrap

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	libra "github.com/libra-deploy/libra-deploy"
)

// launch starts bwrap and sees the command through.
//
// bwrap is started with --block-fd: after it has cloned the sandbox's first
// process and set up every mount, that process waits for a byte. Until then
// only two single-threaded processes exist (bwrap outside, its child
// inside), so moving both into the cgroup before releasing them puts every
// process the command will ever start in it, with no window for an early
// fork to escape. (rlimits are set inside, by the helper: see
// helperRlimits.)
func (s *sandbox) launch(ctx, runCtx context.Context, c libra.Command, opts, argv []string, output func(string)) (int, error) {
	p, err := openLaunchPipes()
	if err != nil {
		return -1, err
	}
	defer p.closeAll()
	cmd := s.bwrapCmd(argv, p)
	before, _ := s.cg.events()
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("%w: start bwrap: %w", ErrStart, err)
	}
	// Keep only the service's ends, so that EOFs arrive when bwrap's side
	// closes.
	closeAll(p.childEnds())
	go writeAndClose(p.argsW, nulJoin(opts))
	go writeAndClose(p.secW, s.p.seccomp)

	l := &launched{s: s, cmd: cmd, started: watchStart(p.statusR), gate: gateOutput(p.outR, output),
		waitDone: make(chan error, 1)}
	go func() { l.waitDone <- cmd.Wait() }()
	if err := l.release(p); err != nil {
		return l.fail(err)
	}
	var note limitNote
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		s.watchDisk(stopWatch, &note)
	}()
	ok, waitErr := l.wait(ctx, runCtx, c, &note)
	close(stopWatch)
	<-watchDone
	// Whatever the command left behind (daemons, orphans) dies with it.
	killErr := s.cg.kill()
	<-l.gate.done
	code := exitCode(cmd.ProcessState, waitErr)
	if !ok {
		return -1, l.startError(ctx, runCtx, c, code)
	}
	return s.finish(ctx, runCtx, c, code, before, &note, killErr, output)
}

// launchPipes are the pipes between the service and bwrap: the helper's
// arguments and seccomp filter in, the sandbox child's pid out, the
// --block-fd release, the helper's start signal, and the command's output.
type launchPipes struct {
	argsR, argsW, secR, secW, infoR, infoW       *os.File
	blockR, blockW, statusR, statusW, outR, outW *os.File
	all                                          []*os.File
}

func openLaunchPipes() (*launchPipes, error) {
	p := &launchPipes{}
	for _, ends := range [][2]**os.File{
		{&p.argsR, &p.argsW}, {&p.secR, &p.secW}, {&p.infoR, &p.infoW},
		{&p.blockR, &p.blockW}, {&p.statusR, &p.statusW}, {&p.outR, &p.outW},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			p.closeAll()
			return nil, fmt.Errorf("sandbox: pipe: %w", err)
		}
		*ends[0], *ends[1] = r, w
		p.all = append(p.all, r, w)
	}
	return p, nil
}

// childEnds are the ends bwrap inherits.
func (p *launchPipes) childEnds() []*os.File {
	return []*os.File{p.argsR, p.secR, p.infoW, p.blockR, p.statusW, p.outW}
}

// closeAll closes every end; closing one twice is harmless.
func (p *launchPipes) closeAll() { closeAll(p.all) }

func (s *sandbox) bwrapCmd(argv []string, p *launchPipes) *exec.Cmd {
	return &exec.Cmd{
		Path: argv[0],
		Args: argv,
		// Empty, not nil (nil would mean the service's environment): bwrap's
		// pid 1 keeps the environment it was started with, readable at
		// /proc/1/environ inside.
		Env:        []string{},
		Dir:        "/",
		Stdout:     p.outW,
		Stderr:     p.outW,
		ExtraFiles: []*os.File{p.argsR, p.secR, p.infoW, p.blockR, p.statusW},
		SysProcAttr: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.uid), Groups: []uint32{}},
			Pdeathsig:  syscall.SIGKILL,
		},
	}
}

// watchStart reports the helper's start signal: true for the one byte it
// writes once it runs, false at EOF (bwrap died first).
func watchStart(statusR io.Reader) <-chan bool {
	started := make(chan bool, 1)
	go func() {
		var b [1]byte
		n, _ := statusR.Read(b[:])
		started <- n == 1
	}()
	return started
}

// outputGate holds the command's output back until the start is known, so
// that bwrap's own complaints (which name host paths) go to the error, not
// the build log.
type outputGate struct {
	known    chan bool     // told once: did the command start?
	done     chan struct{} // closed when the output has been read to EOF
	setupOut []string      // what bwrap printed when it failed to start
}

func gateOutput(outR io.Reader, output func(string)) *outputGate {
	g := &outputGate{known: make(chan bool, 1), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		emit := output
		if ok := <-g.known; !ok {
			emit = func(l string) {
				if len(g.setupOut) < 20 {
					g.setupOut = append(g.setupOut, l)
				}
			}
		}
		_ = readLines(outR, emit)
	}()
	return g
}

// launched is a started bwrap, until it ends.
type launched struct {
	s        *sandbox
	cmd      *exec.Cmd
	started  <-chan bool
	gate     *outputGate
	waitDone chan error
	childPid int
	told     bool // the gate knows whether the command started
}

// release moves bwrap and its blocked child into the cgroup, then lets the
// child go on.
func (l *launched) release(p *launchPipes) error {
	var err error
	if l.childPid, err = readChildPid(p.infoR); err != nil {
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	for _, pid := range []int{l.cmd.Process.Pid, l.childPid} {
		if err := l.s.cg.add(pid); err != nil {
			return fmt.Errorf("%w: %w", ErrStart, err)
		}
	}
	if _, err := p.blockW.Write([]byte{1}); err != nil {
		return fmt.Errorf("%w: release sandbox: %w", ErrStart, err)
	}
	p.blockW.Close()
	return nil
}

// fail ends a launch that could not be released. bwrap's child is blocked on
// --block-fd and has not yet tied its life to its parent's; closing the pipe
// (the deferred close) would let it run the command outside the cgroup. Kill
// it first, and sweep the uid, which belongs to this sandbox alone, for
// anything else.
func (l *launched) fail(err error) (int, error) {
	_ = l.cmd.Process.Kill()
	if l.childPid > 0 {
		_ = killPid(l.childPid)
	}
	_ = l.s.cg.kill()
	_ = killUID(l.s.uid)
	if !l.told {
		l.gate.known <- false
	}
	<-l.waitDone
	<-l.gate.done
	return -1, err
}

// wait waits for the start signal, the end, or the deadline, and reports
// whether the command started.
func (l *launched) wait(ctx, runCtx context.Context, c libra.Command, note *limitNote) (ok bool, waitErr error) {
	started := l.started
	for ended := false; !ended; {
		select {
		case ok = <-started:
			l.tell(ok)
			started = nil
		case waitErr = <-l.waitDone:
			ended = true
		case <-runCtx.Done():
			if ctx.Err() == nil {
				note.set(fmt.Sprintf("sandbox: timed out after %s, killed", c.Timeout))
			}
			_ = l.s.cg.kill()
			waitErr = <-l.waitDone
			ended = true
		}
	}
	if !l.told {
		// bwrap exited: the status pipe is at EOF unless the helper wrote.
		ok = <-started
		l.tell(ok)
	}
	return ok, waitErr
}

func (l *launched) tell(ok bool) {
	if !l.told {
		l.told = true
		l.gate.known <- ok
	}
}

// startError explains a command that never started.
func (l *launched) startError(ctx, runCtx context.Context, c libra.Command, code int) error {
	if runCtx.Err() != nil {
		return l.s.ctxError(ctx, c)
	}
	msg := strings.Join(l.gate.setupOut, "; ")
	if msg == "" {
		msg = fmt.Sprintf("bwrap exited with %d", code)
	}
	return fmt.Errorf("%w: %s", ErrStart, msg)
}

// finish reports the limits a command ran into, in its output, and settles
// its exit code.
func (s *sandbox) finish(ctx, runCtx context.Context, c libra.Command, code int, before cgroupEvents, note *limitNote, killErr error, output func(string)) (int, error) {
	after, _ := s.cg.events()
	if reason := note.get(); reason != "" {
		output(reason)
	}
	if after.oomKills > before.oomKills {
		output(fmt.Sprintf("sandbox: out of memory: a process was killed at the %s memory limit", formatBytes(s.p.cfg.MemoryLimit)))
	}
	if after.pidsMax > before.pidsMax {
		output(fmt.Sprintf("sandbox: process limit reached: %d forks refused at %d processes and threads", after.pidsMax-before.pidsMax, s.p.cfg.PidsLimit))
	}
	if runCtx.Err() != nil {
		return code, s.ctxError(ctx, c)
	}
	// A command that finished between two disk checks is measured once more.
	if reason := s.diskExceeded(); reason != "" {
		output(reason)
		if code == 0 {
			code = 1
		}
	}
	if killErr != nil {
		return code, fmt.Errorf("sandbox: clean up processes: %w", killErr)
	}
	return code, nil
}
