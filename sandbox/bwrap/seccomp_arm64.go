package bwrap

import "golang.org/x/sys/unix"

const (
	seccompSupported = true
	seccompAuditArch = unix.AUDIT_ARCH_AARCH64
	// arm64 has a single syscall ABI.
	seccompX32Bit = 0
)

// archDenied is empty: the x86-only calls do not exist here.
func archDenied() []deniedSyscall { return nil }
