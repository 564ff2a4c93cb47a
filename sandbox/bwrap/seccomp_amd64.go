package bwrap

import "golang.org/x/sys/unix"

const (
	seccompSupported = true
	seccompAuditArch = unix.AUDIT_ARCH_X86_64
	// seccompX32Bit marks x32 ABI syscall numbers, which reach the same kernel
	// entry points under other numbers; nothing in a Node build uses them.
	seccompX32Bit = 0x40000000
)

// archDenied adds the x86-64-only calls: port I/O, LDT changes and
// long-obsolete module and sysctl interfaces.
func archDenied() []deniedSyscall {
	d := func(name string, nr uintptr) deniedSyscall {
		return deniedSyscall{name: name, nr: uint32(nr), errno: unix.EPERM}
	}
	return []deniedSyscall{
		d("iopl", unix.SYS_IOPL),
		d("ioperm", unix.SYS_IOPERM),
		d("modify_ldt", unix.SYS_MODIFY_LDT),
		d("uselib", unix.SYS_USELIB),
		d("_sysctl", unix.SYS__SYSCTL),
		d("create_module", unix.SYS_CREATE_MODULE),
		d("get_kernel_syms", unix.SYS_GET_KERNEL_SYMS),
		d("query_module", unix.SYS_QUERY_MODULE),
	}
}
