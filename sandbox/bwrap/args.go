package bwrap

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Paths inside every sandbox.
const (
	// ProjectDir is where the project directory (SandboxOptions.WorkDir)
	// appears, read-write; commands start in it.
	ProjectDir = "/work/project"
	// HomeDir is the build user's home: private to the sandbox, kept across
	// its commands (tools that install into ~ during install and use it
	// during build keep working), deleted by Destroy.
	HomeDir = "/home/builder"
	// CacheMount holds the dependency caches (npm's in CacheMount/npm).
	CacheMount = "/cache"

	helperInSandbox = "/run/libra/helper"
	proxyInSandbox  = "/run/libra/proxy.sock"
	// sandboxUID is the uid and gid the build sees; the host sees the pool
	// uid. A fixed inner uid keeps logs and file listings identical from one
	// build to the next.
	sandboxUID = 1000
	caBundle   = "/etc/ssl/certs/ca-certificates.crt"
)

// Descriptor numbers handed to bwrap: ExtraFiles[i] becomes fd 3+i.
const (
	fdArgs = 3 + iota
	fdSeccomp
	fdInfo
	fdBlock
	fdStatus
)

// generatedEtc are the /etc files the sandbox sees instead of the host's:
// enough for getpwuid, "localhost" and name lookups to work, nothing about
// the host's users or names.
var generatedEtc = map[string]string{
	"passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n" +
		"builder:x:" + strconv.Itoa(sandboxUID) + ":" + strconv.Itoa(sandboxUID) + ":build:" + HomeDir + ":/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	"group": "root:x:0:\nbuilder:x:" + strconv.Itoa(sandboxUID) + ":\nnogroup:x:65534:\n",
	"hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n" +
		"networks: files\nprotocols: files\nservices: files\n",
}

// hostEtc are host /etc entries passed through read-only when they exist:
// certificates (the bundle NODE_EXTRA_CA_CERTS names), Debian's
// alternatives symlinks (awk, which, ...), the loader cache and the zone.
// None says anything about the host beyond its installed packages.
var hostEtc = []string{"/etc/ssl/certs", "/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime"}

// staticArgs are the bwrap options every sandbox shares: namespaces and the
// read-only view of the system. Computed once per provider.
func (p *Provider) staticArgs() ([]string, error) {
	a := []string{
		// --unshare-all tries a user namespace; naming it makes it
		// mandatory, which --disable-userns needs.
		"--unshare-all", "--unshare-user", "--disable-userns",
		"--die-with-parent", "--new-session",
		"--uid", strconv.Itoa(sandboxUID), "--gid", strconv.Itoa(sandboxUID),
		"--hostname", "sandbox",
		"--ro-bind", "/usr", "/usr",
	}
	// Merged-/usr systems (Debian 12) have these as symlinks into /usr;
	// older layouts have real directories, bound read-only.
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return nil, fmt.Errorf("inspect %s: %w", d, err)
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err != nil {
				return nil, fmt.Errorf("read link %s: %w", d, err)
			}
			a = append(a, "--symlink", target, d)
		case fi.IsDir():
			a = append(a, "--ro-bind", d, d)
		}
	}
	// /usr/local holds whatever the host's admin installed by hand (here: a
	// Go toolchain); an empty tmpfs hides it unless configured in.
	a = append(a, "--tmpfs", "/usr/local", "--remount-ro", "/usr/local")
	for _, d := range p.cfg.ExtraReadOnly {
		a = append(a, "--ro-bind", d, d)
	}
	tmp := strconv.FormatInt(p.cfg.TmpSize, 10)
	a = append(a,
		"--proc", "/proc",
		"--dev", "/dev",
		"--perms", "1777", "--size", tmp, "--tmpfs", "/tmp",
		"--perms", "1777", "--size", tmp, "--tmpfs", "/dev/shm",
	)
	for _, name := range slices.Sorted(maps.Keys(generatedEtc)) {
		a = append(a, "--ro-bind", filepath.Join(p.etcDir, name), "/etc/"+name)
	}
	for _, e := range hostEtc {
		fi, err := os.Lstat(e)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(e)
			if err != nil {
				continue
			}
			a = append(a, "--symlink", target, e)
			continue
		}
		a = append(a, "--ro-bind", e, e)
	}
	return a, nil
}

// sandboxArgs are the options for one command: the static part, this
// sandbox's writable directories, the environment and the descriptors.
func (s *sandbox) sandboxArgs(c libra.Command, proxySock string) ([]string, error) {
	env, err := s.environment(c.Env)
	if err != nil {
		return nil, err
	}
	a := slices.Clone(s.p.static)
	a = append(a,
		"--bind", s.home, HomeDir,
		"--bind", s.cacheDir, CacheMount,
		"--bind", s.workDir, ProjectDir,
		"--ro-bind", s.p.helper, helperInSandbox,
	)
	if proxySock != "" {
		a = append(a, "--ro-bind", proxySock, proxyInSandbox)
	}
	// The root itself is a tmpfs bwrap made, owned by the build user: made
	// read-only, nothing outside the binds above is writable.
	a = append(a, "--remount-ro", "/", "--chdir", ProjectDir, "--clearenv")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		a = append(a, "--setenv", k, v)
	}
	a = append(a,
		"--seccomp", strconv.Itoa(fdSeccomp),
		"--info-fd", strconv.Itoa(fdInfo),
		"--block-fd", strconv.Itoa(fdBlock),
	)
	return a, nil
}

// commandLine is bwrap's visible argv: every option travels through --args,
// so that neither host paths nor environment values appear in the
// command line of the sandbox's pid 1, which the build can read.
func commandLine(bwrapPath string, c libra.Command, proxied bool, rlimits string) []string {
	argv := []string{bwrapPath, "--args", strconv.Itoa(fdArgs),
		helperInSandbox, HelperCommand, "--status-fd", strconv.Itoa(fdStatus), "--rlimits", rlimits}
	if proxied {
		argv = append(argv, "--proxy", proxyInSandbox)
	}
	argv = append(argv, "--")
	return append(argv, c.Args...)
}

// environment is the sandbox's fixed environment with extra on top, as
// sorted KEY=VALUE strings.
func (s *sandbox) environment(extra map[string]string) ([]string, error) {
	env := map[string]string{
		"PATH":    "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
		"HOME":    HomeDir,
		"USER":    "builder",
		"LOGNAME": "builder",
		"SHELL":   "/bin/sh",
		"LANG":    "C.UTF-8",
		"TMPDIR":  "/tmp",
		"CI":      "1",
		// Where TLS is intercepted (as on this project's machines) the
		// interceptor's CA is only in the system bundle, which node does not
		// read by default.
		"NODE_EXTRA_CA_CERTS": caBundle,
		// V8 sizes its heap from the host's memory, not the cgroup's: without
		// this a big build is OOM-killed instead of collecting garbage. Below
		// a 2048 MiB cap V8 also grows the heap by at most 2x per full
		// collection instead of 4x: on the profile app (testdata/aiapp)
		// 8 full collections instead of 4 and a `vite build` ~10 % slower,
		// which is why the default memory limit is 4 GiB (a 3072 MiB cap).
		"NODE_OPTIONS":               "--max-old-space-size=" + strconv.FormatInt(s.p.cfg.MemoryLimit*3/4>>20, 10),
		"npm_config_cache":           CacheMount + "/npm",
		"npm_config_update_notifier": "false",
		"XDG_CACHE_HOME":             CacheMount + "/xdg",
		// In the project, not in the org's cache mount: bun hard-links
		// packages from its cache into node_modules, and link(2) fails
		// across two bind mounts even on one file system, so with its
		// cache on the other mount bun copied every file (the profile
		// app's cold install 8.1 s instead of 3.9 s). build.Cache leaves
		// this directory out of what it saves.
		"BUN_INSTALL_CACHE_DIR": ProjectDir + "/node_modules/.cache/bun",
	}
	for k, v := range extra {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("sandbox: invalid environment variable %q", k)
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

// nulJoin encodes arguments for bwrap's --args: each one NUL-terminated.
func nulJoin(args []string) []byte {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a)
		b.WriteByte(0)
	}
	return []byte(b.String())
}

// helperRlimits encodes the per-process limits for the helper, which sets
// them on itself before it runs the command; everything the command starts
// inherits them, and with soft = hard nothing can raise them again.
//
// They are set inside rather than with prlimit(2) from the service because
// prlimit on another uid's process needs CAP_SYS_RESOURCE, which container
// runtimes often drop even for root (this project's machines do), whereas
// lowering one's own limits needs nothing. The helper is the service's own
// code and runs before anything the build controls.
//
// RLIMIT_AS is deliberately absent: V8 and Vite's native bundlers reserve far
// more address space than they use, and the cgroup bounds real memory.
func (p *Provider) helperRlimits() string {
	cpu := int64(p.cfg.CPUTimeLimit / time.Second)
	return strings.Join([]string{
		"fsize=" + strconv.FormatInt(p.cfg.FileSizeLimit, 10),
		// SIGXCPU at the soft limit lets a process die with a message; the
		// kernel's SIGKILL at the hard limit follows.
		"cpu=" + strconv.FormatInt(cpu, 10) + ":" + strconv.FormatInt(cpu+5, 10),
		"core=0",
		"nofile=" + strconv.Itoa(p.cfg.OpenFilesLimit),
		// Counted per uid, and each build has its own: a second fork limit
		// that does not depend on the cgroup.
		"nproc=" + strconv.Itoa(p.cfg.PidsLimit),
	}, ",")
}
