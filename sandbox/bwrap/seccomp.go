package bwrap

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// deniedSyscall is one system call the sandbox may not make and the error it
// gets instead. Denied calls fail with an errno rather than killing the
// process: package managers and runtimes probe for features (io_uring, clone3,
// name_to_handle_at) and fall back when the probe fails, whereas a kill would
// turn a harmless probe into a failed build.
type deniedSyscall struct {
	name  string
	nr    uint32
	errno syscall.Errno
}

// commonDenied is the deny list shared by every supported architecture.
//
// The sandbox already has no capabilities and cannot create user namespaces,
// so most of these would fail anyway; the filter is a second wall that does not
// depend on the kernel getting every capability check right, and it closes
// calls that need no capability at all but widen the kernel attack surface
// (bpf, io_uring, userfaultfd, perf_event_open, keyctl) or reach other
// processes (ptrace, process_vm_*, pidfd_getfd, kcmp).
func commonDenied() []deniedSyscall {
	eperm := func(name string, nr uintptr) deniedSyscall {
		return deniedSyscall{name: name, nr: uint32(nr), errno: unix.EPERM}
	}
	enosys := func(name string, nr uintptr) deniedSyscall {
		return deniedSyscall{name: name, nr: uint32(nr), errno: unix.ENOSYS}
	}
	return []deniedSyscall{
		// Other processes.
		eperm("ptrace", unix.SYS_PTRACE),
		eperm("process_vm_readv", unix.SYS_PROCESS_VM_READV),
		eperm("process_vm_writev", unix.SYS_PROCESS_VM_WRITEV),
		eperm("kcmp", unix.SYS_KCMP),
		eperm("pidfd_getfd", unix.SYS_PIDFD_GETFD),
		// Mounts and namespaces.
		eperm("mount", unix.SYS_MOUNT),
		eperm("umount2", unix.SYS_UMOUNT2),
		eperm("pivot_root", unix.SYS_PIVOT_ROOT),
		eperm("fsopen", unix.SYS_FSOPEN),
		eperm("fsconfig", unix.SYS_FSCONFIG),
		eperm("fsmount", unix.SYS_FSMOUNT),
		eperm("fspick", unix.SYS_FSPICK),
		eperm("move_mount", unix.SYS_MOVE_MOUNT),
		eperm("open_tree", unix.SYS_OPEN_TREE),
		eperm("mount_setattr", unix.SYS_MOUNT_SETATTR),
		eperm("unshare", unix.SYS_UNSHARE),
		eperm("setns", unix.SYS_SETNS),
		// clone3 passes its flags in memory, where a classic BPF filter cannot
		// look, so namespace flags could not be refused; ENOSYS makes glibc and
		// others fall back to clone, whose flags the filter does check.
		enosys("clone3", unix.SYS_CLONE3),
		// Kernel attack surface reachable without privileges.
		eperm("bpf", unix.SYS_BPF),
		eperm("perf_event_open", unix.SYS_PERF_EVENT_OPEN),
		eperm("userfaultfd", unix.SYS_USERFAULTFD),
		enosys("io_uring_setup", unix.SYS_IO_URING_SETUP),
		enosys("io_uring_enter", unix.SYS_IO_URING_ENTER),
		enosys("io_uring_register", unix.SYS_IO_URING_REGISTER),
		eperm("keyctl", unix.SYS_KEYCTL),
		eperm("add_key", unix.SYS_ADD_KEY),
		eperm("request_key", unix.SYS_REQUEST_KEY),
		eperm("fanotify_init", unix.SYS_FANOTIFY_INIT),
		eperm("move_pages", unix.SYS_MOVE_PAGES),
		eperm("migrate_pages", unix.SYS_MIGRATE_PAGES),
		// File handles bypass path-based confinement.
		eperm("open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT),
		enosys("name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT),
		// Whole-system state.
		eperm("kexec_load", unix.SYS_KEXEC_LOAD),
		eperm("kexec_file_load", unix.SYS_KEXEC_FILE_LOAD),
		eperm("init_module", unix.SYS_INIT_MODULE),
		eperm("finit_module", unix.SYS_FINIT_MODULE),
		eperm("delete_module", unix.SYS_DELETE_MODULE),
		eperm("swapon", unix.SYS_SWAPON),
		eperm("swapoff", unix.SYS_SWAPOFF),
		eperm("reboot", unix.SYS_REBOOT),
		eperm("acct", unix.SYS_ACCT),
		eperm("quotactl", unix.SYS_QUOTACTL),
		eperm("quotactl_fd", unix.SYS_QUOTACTL_FD),
		eperm("syslog", unix.SYS_SYSLOG),
		eperm("settimeofday", unix.SYS_SETTIMEOFDAY),
		eperm("clock_settime", unix.SYS_CLOCK_SETTIME),
		eperm("clock_adjtime", unix.SYS_CLOCK_ADJTIME),
		eperm("adjtimex", unix.SYS_ADJTIMEX),
		eperm("sethostname", unix.SYS_SETHOSTNAME),
		eperm("setdomainname", unix.SYS_SETDOMAINNAME),
		eperm("vhangup", unix.SYS_VHANGUP),
		eperm("lookup_dcookie", unix.SYS_LOOKUP_DCOOKIE),
		eperm("nfsservctl", unix.SYS_NFSSERVCTL),
	}
}

// cloneNamespaceFlags are the clone(2) flags that create namespaces. They all
// sit in the low 32 bits of the first argument.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP |
	unix.CLONE_NEWTIME

// Offsets in struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6].
// args[0] is read at its low word, which is at the lower address on the
// little-endian architectures this file supports.
const (
	offNr    = 0
	offArch  = 4
	offArg0L = 16
)

// bpfInsn is one classic BPF instruction whose jump targets are labels; ""
// means the next instruction.
type bpfInsn struct {
	label  string
	code   uint16
	k      uint32
	jt, jf string
}

// seccompProgram returns the filter bubblewrap loads with --seccomp, in the
// raw struct sock_filter layout it expects (what seccomp_export_bpf writes).
//
// Layout: a foreign architecture (e.g. the i386 entry point on x86-64, whose
// syscall numbers differ and would dodge the list) and the x32 ABI kill the
// process; clone is allowed only without namespace flags; each denied number
// returns its errno; everything else is allowed.
func seccompProgram() ([]byte, error) {
	if !seccompSupported {
		return nil, fmt.Errorf("seccomp filter: architecture not supported (amd64 and arm64 are)")
	}
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
	)
	prog := []bpfInsn{
		{code: ldAbs, k: offArch},
		{code: jeq, k: seccompAuditArch, jf: "kill"},
		{code: ldAbs, k: offNr},
	}
	if seccompX32Bit != 0 {
		prog = append(prog, bpfInsn{code: jge, k: seccompX32Bit, jt: "kill"})
	}
	prog = append(prog, bpfInsn{code: jeq, k: uint32(unix.SYS_CLONE), jt: "clone"})

	denied := append(commonDenied(), archDenied()...)
	errnoLabel := func(e syscall.Errno) string { return fmt.Sprintf("errno%d", int(e)) }
	var errnos []syscall.Errno
	seen := map[syscall.Errno]bool{}
	for _, d := range denied {
		prog = append(prog, bpfInsn{code: jeq, k: d.nr, jt: errnoLabel(d.errno)})
		if !seen[d.errno] {
			seen[d.errno] = true
			errnos = append(errnos, d.errno)
		}
	}
	prog = append(prog,
		bpfInsn{label: "allow", code: ret, k: unix.SECCOMP_RET_ALLOW},
		bpfInsn{label: "clone", code: ldAbs, k: offArg0L},
		bpfInsn{code: jset, k: cloneNamespaceFlags, jt: errnoLabel(unix.EPERM)},
		bpfInsn{code: ret, k: unix.SECCOMP_RET_ALLOW},
		bpfInsn{label: "kill", code: ret, k: unix.SECCOMP_RET_KILL_PROCESS},
	)
	if !seen[unix.EPERM] {
		errnos = append(errnos, unix.EPERM)
	}
	for _, e := range errnos {
		prog = append(prog, bpfInsn{label: errnoLabel(e), code: ret, k: unix.SECCOMP_RET_ERRNO | (uint32(e) & unix.SECCOMP_RET_DATA)})
	}
	return assembleBPF(prog)
}

// assembleBPF resolves labels into the forward-only 8-bit jump offsets of
// classic BPF and encodes the program in native byte order.
func assembleBPF(prog []bpfInsn) ([]byte, error) {
	at := map[string]int{}
	for i, in := range prog {
		if in.label == "" {
			continue
		}
		if _, dup := at[in.label]; dup {
			return nil, fmt.Errorf("seccomp filter: duplicate label %q", in.label)
		}
		at[in.label] = i
	}
	offset := func(i int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		t, ok := at[label]
		if !ok {
			return 0, fmt.Errorf("seccomp filter: undefined label %q", label)
		}
		d := t - (i + 1)
		if d < 0 || d > 255 {
			return 0, fmt.Errorf("seccomp filter: jump from %d to %q out of range", i, label)
		}
		return uint8(d), nil
	}
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp filter: %d instructions, more than %d", len(prog), unix.BPF_MAXINSNS)
	}
	out := make([]byte, 0, 8*len(prog))
	for i, in := range prog {
		jt, err := offset(i, in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := offset(i, in.jf)
		if err != nil {
			return nil, err
		}
		out = binary.NativeEndian.AppendUint16(out, in.code)
		out = append(out, jt, jf)
		out = binary.NativeEndian.AppendUint32(out, in.k)
	}
	return out, nil
}
