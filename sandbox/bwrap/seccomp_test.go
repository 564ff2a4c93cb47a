package bwrap

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// runBPF interprets the subset of classic BPF that seccompProgram emits
// against one struct seccomp_data, so the filter's logic can be checked
// without a kernel.
func runBPF(t *testing.T, prog []byte, nr, arch uint32, arg0 uint64) uint32 {
	t.Helper()
	var data [64]byte
	binary.NativeEndian.PutUint32(data[0:], nr)
	binary.NativeEndian.PutUint32(data[4:], arch)
	binary.NativeEndian.PutUint64(data[16:], arg0)
	var acc uint32
	for pc := 0; pc < len(prog)/8; {
		ins := prog[pc*8 : pc*8+8]
		code := binary.NativeEndian.Uint16(ins[0:])
		jt, jf := int(ins[2]), int(ins[3])
		k := binary.NativeEndian.Uint32(ins[4:])
		pc++
		switch code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.NativeEndian.Uint32(data[k:])
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += pick(acc == k, jt, jf)
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			pc += pick(acc >= k, jt, jf)
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			pc += pick(acc&k != 0, jt, jf)
		case unix.BPF_RET | unix.BPF_K:
			return k
		default:
			t.Fatalf("unexpected instruction %#x at %d", code, pc-1)
		}
	}
	t.Fatal("program fell off its end")
	return 0
}

func pick(cond bool, a, b int) int {
	if cond {
		return a
	}
	return b
}

func TestSeccompProgram(t *testing.T) {
	if !seccompSupported {
		t.Skip("no filter for this architecture")
	}
	prog, err := seccompProgram()
	if err != nil {
		t.Fatal(err)
	}
	if len(prog)%8 != 0 || len(prog)/8 > unix.BPF_MAXINSNS {
		t.Fatalf("program of %d bytes", len(prog))
	}
	const (
		allow = unix.SECCOMP_RET_ALLOW
		kill  = unix.SECCOMP_RET_KILL_PROCESS
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		nosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	arch := uint32(seccompAuditArch)
	cases := []struct {
		name string
		nr   uint32
		arch uint32
		arg0 uint64
		want uint32
	}{
		{"read", unix.SYS_READ, arch, 0, allow},
		{"openat", unix.SYS_OPENAT, arch, 0, allow},
		{"execve", unix.SYS_EXECVE, arch, 0, allow},
		{"ptrace", unix.SYS_PTRACE, arch, 0, eperm},
		{"mount", unix.SYS_MOUNT, arch, 0, eperm},
		{"unshare", unix.SYS_UNSHARE, arch, 0, eperm},
		{"bpf", unix.SYS_BPF, arch, 0, eperm},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, arch, 0, nosys},
		{"clone3", unix.SYS_CLONE3, arch, 0, nosys},
		{"keyctl", unix.SYS_KEYCTL, arch, 0, eperm},
		{"clone fork-like", unix.SYS_CLONE, arch, uint64(unix.SIGCHLD), allow},
		{"clone thread", unix.SYS_CLONE, arch, unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND | unix.CLONE_FS | unix.CLONE_FILES, allow},
		{"clone new user ns", unix.SYS_CLONE, arch, unix.CLONE_NEWUSER, eperm},
		{"clone new net ns", unix.SYS_CLONE, arch, unix.CLONE_NEWNET | uint64(unix.SIGCHLD), eperm},
		{"foreign architecture", unix.SYS_READ, arch ^ 1, 0, kill},
	}
	if seccompX32Bit != 0 {
		cases = append(cases, struct {
			name string
			nr   uint32
			arch uint32
			arg0 uint64
			want uint32
		}{"x32 ABI", seccompX32Bit | unix.SYS_READ, arch, 0, kill})
	}
	for _, tc := range cases {
		if got := runBPF(t, prog, tc.nr, tc.arch, tc.arg0); got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, got, tc.want)
		}
	}
	// Every listed call is refused.
	for _, d := range append(commonDenied(), archDenied()...) {
		want := unix.SECCOMP_RET_ERRNO | uint32(d.errno)
		if got := runBPF(t, prog, d.nr, arch, 0); got != want {
			t.Errorf("%s: %#x, want %#x", d.name, got, want)
		}
	}
}

func TestAssembleBPFRejectsBadJumps(t *testing.T) {
	for name, prog := range map[string][]bpfInsn{
		"undefined label": {{code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, jt: "nowhere"}},
		"backward jump":   {{label: "top", code: unix.BPF_RET}, {code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, jt: "top"}},
		"duplicate label": {{label: "a", code: unix.BPF_RET}, {label: "a", code: unix.BPF_RET}},
	} {
		if _, err := assembleBPF(prog); err == nil {
			t.Errorf("%s: assembled", name)
		}
	}
}
