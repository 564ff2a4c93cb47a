package bwrap

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// HelperCommand is the hidden subcommand under which the service binary must
// call HelperMain, as the very first thing in main:
//
//	if len(os.Args) > 1 && os.Args[1] == bwrap.HelperCommand {
//		os.Exit(bwrap.HelperMain(os.Args[2:]))
//	}
const HelperCommand = "sandbox-helper"

// Exit codes of the helper itself, following the shell's conventions.
const (
	exitHelperUsage = 125 // the helper was called wrongly
	exitCannotExec  = 126 // the command exists but could not be run
	exitNotFound    = 127 // the command does not exist
)

// HelperMain runs inside the sandbox, as the process bubblewrap starts. It
//
//   - tells the provider, through the --status-fd pipe, that bwrap set the
//     sandbox up and exec'd it (bwrap's own failures and the command's exit
//     code 1 are otherwise indistinguishable);
//   - with --proxy SOCKET, listens on 127.0.0.1 inside the sandbox's private
//     network namespace, relays each connection to the proxy's unix socket,
//     and points HTTP_PROXY, HTTPS_PROXY and npm's proxy settings at itself;
//   - runs the command: replaced by it (exec) when there is nothing to relay,
//     as its parent otherwise, exiting with its exit code (128+signal when it
//     was killed).
//
// args are the arguments after HelperCommand. The return value is the exit
// code.
func HelperMain(args []string) int {
	fs := flag.NewFlagSet(HelperCommand, flag.ContinueOnError)
	statusFD := fs.Int("status-fd", -1, "pipe to report a successful start on")
	proxySock := fs.String("proxy", "", "unix socket of the host's allow-listing proxy")
	rlimits := fs.String("rlimits", "", "name=soft[:hard],... limits to set before running the command")
	if err := fs.Parse(args); err != nil {
		return exitHelperUsage
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "sandbox: no command given")
		return exitHelperUsage
	}
	if err := setRlimits(*rlimits); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		return exitHelperUsage
	}
	// Nothing the sandbox inherited beyond stdio (and the status pipe, closed
	// below) may reach the command.
	markInheritedCloseOnExec()

	env := os.Environ()
	if *proxySock != "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(os.Stderr, "sandbox: proxy relay: %v\n", err)
			return exitHelperUsage
		}
		go relay(l, *proxySock)
		env = withProxyEnv(env, "http://"+l.Addr().String())
	}

	path, lookErr := exec.LookPath(argv[0])
	if *statusFD >= 0 {
		status := os.NewFile(uintptr(*statusFD), "status")
		_, _ = status.Write([]byte{1})
		_ = status.Close()
	}
	if lookErr != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %s: command not found\n", argv[0])
		return exitNotFound
	}
	if *proxySock == "" {
		err := syscall.Exec(path, argv, env)
		fmt.Fprintf(os.Stderr, "sandbox: %s: %v\n", argv[0], err)
		return exitCannotExec
	}

	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %s: %v\n", argv[0], err)
		return exitCannotExec
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %s: %v\n", argv[0], err)
		return exitCannotExec
	}
	return 0
}

// markInheritedCloseOnExec sets FD_CLOEXEC on every descriptor above stderr.
func markInheritedCloseOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// withProxyEnv points every common proxy setting at url. Lower- and upper-case
// variants both exist because tools disagree on which they read; npm reads
// its own npm_config_* settings first.
func withProxyEnv(env []string, url string) []string {
	set := map[string]string{
		"HTTP_PROXY":             url,
		"HTTPS_PROXY":            url,
		"http_proxy":             url,
		"https_proxy":            url,
		"npm_config_proxy":       url,
		"npm_config_https_proxy": url,
		"NO_PROXY":               "localhost,127.0.0.1,::1",
		"no_proxy":               "localhost,127.0.0.1,::1",
	}
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// relay accepts TCP connections and pipes each to the unix socket.
func relay(l net.Listener, sock string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("unix", sock)
			if err != nil {
				return
			}
			defer u.Close()
			pipeBoth(c, u)
		}()
	}
}

// halfCloser is a connection that can signal end of writing while still
// reading (TCP and unix sockets both can).
type halfCloser interface {
	CloseWrite() error
}

// pipeBoth copies in both directions until both are done, passing each
// direction's end on as a half-close so that request/response protocols see
// EOF where they expect it.
func pipeBoth(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if hc, ok := dst.(halfCloser); ok {
			_ = hc.CloseWrite()
		} else {
			_ = dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

var rlimitNames = map[string]int{
	"fsize":  unix.RLIMIT_FSIZE,
	"cpu":    unix.RLIMIT_CPU,
	"core":   unix.RLIMIT_CORE,
	"nofile": unix.RLIMIT_NOFILE,
	"nproc":  unix.RLIMIT_NPROC,
}

// setRlimits applies "name=soft[:hard],..." to this process. syscall's
// Setrlimit is used on purpose: it also stops os/exec from restoring Go's
// saved RLIMIT_NOFILE in the command.
func setRlimits(spec string) error {
	if spec == "" {
		return nil
	}
	for _, item := range strings.Split(spec, ",") {
		name, val, ok := strings.Cut(item, "=")
		res, known := rlimitNames[name]
		if !ok || !known {
			return fmt.Errorf("bad rlimit %q", item)
		}
		softS, hardS, hasHard := strings.Cut(val, ":")
		soft, err := strconv.ParseUint(softS, 10, 64)
		if err != nil {
			return fmt.Errorf("bad rlimit %q: %w", item, err)
		}
		hard := soft
		if hasHard {
			if hard, err = strconv.ParseUint(hardS, 10, 64); err != nil {
				return fmt.Errorf("bad rlimit %q: %w", item, err)
			}
		}
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: soft, Max: hard}); err != nil {
			return fmt.Errorf("set rlimit %s: %w", name, err)
		}
	}
	return nil
}
