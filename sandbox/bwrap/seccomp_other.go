//go:build !amd64 && !arm64

package bwrap

// The filter's syscall numbers and argument offsets are only written and
// tested for amd64 and arm64; elsewhere the provider refuses to start rather
// than run builds without a filter.
const (
	seccompSupported = false
	seccompAuditArch = 0
	seccompX32Bit    = 0
)

func archDenied() []deniedSyscall { return nil }
