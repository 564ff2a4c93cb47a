package bwrap

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeMain runs inside a sandbox (the test binary is the helper there) and
// prints "name errno" for each system call it tries, so that tests can see
// the seccomp filter and the missing privileges from the inside.
func probeMain(args []string) int {
	try := func(name string, nr uintptr, a ...uintptr) {
		var a6 [6]uintptr
		copy(a6[:], a)
		_, _, e := syscall.Syscall6(nr, a6[0], a6[1], a6[2], a6[3], a6[4], a6[5])
		fmt.Printf("%s %d\n", name, int(e))
	}
	try("getpid", unix.SYS_GETPID)
	try("ptrace", unix.SYS_PTRACE, unix.PTRACE_TRACEME)
	try("unshare", unix.SYS_UNSHARE, unix.CLONE_NEWUSER)
	try("mount", unix.SYS_MOUNT)
	try("keyctl", unix.SYS_KEYCTL, 0)
	try("bpf", unix.SYS_BPF, 0)
	try("io_uring_setup", unix.SYS_IO_URING_SETUP, 1, 0)
	try("userfaultfd", unix.SYS_USERFAULTFD, 0)
	try("perf_event_open", unix.SYS_PERF_EVENT_OPEN)
	try("clone3", unix.SYS_CLONE3)
	// clone with a namespace flag; without the filter this would fail later
	// (no privileges) or fork.
	try("clone_newnet", unix.SYS_CLONE, unix.CLONE_NEWNET|uintptr(syscall.SIGCHLD))
	try("setns", unix.SYS_SETNS, 0, 0)
	try("open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT)
	_ = os.Stdout.Sync()
	return 0
}
