package bwrap

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config configures the local provider. The zero value of every field means
// its default.
type Config struct {
	// BwrapPath is the bubblewrap binary. Default: "bwrap" from PATH.
	BwrapPath string
	// HelperPath is a binary that runs HelperMain when its first argument is
	// HelperCommand (the service binary itself). It is copied into StateDir
	// and bound read-only into every sandbox. Default: os.Executable().
	HelperPath string
	// StateDir holds the provider's own files: the helper copy, generated
	// /etc files, and per-sandbox home directories and proxy sockets. It and
	// every project directory handed to Create must be reachable by the build
	// uids: every ancestor needs the search bit for others (mode o+x), because
	// bubblewrap resolves bind sources as the unprivileged build uid. Default:
	// /var/lib/libra-deploy/sandbox.
	StateDir string
	// CacheDir, if set, keeps one dependency cache per org, bound read-write
	// at /cache (npm_config_cache=/cache/npm). One sandbox at a time holds an
	// org's cache; a second concurrent build of the same org, or any build
	// when CacheDir is empty, gets a private cache deleted with its sandbox.
	// A cache that grew past twice DiskLimit is dropped at Destroy. Same
	// reachability rule as StateDir.
	CacheDir string

	// UIDCount build uids are claimed host-wide at New and held until
	// Close; each uid doubles as the gid. UIDCount is the provider's maximum
	// number of live sandboxes: Create waits for a free uid. With UIDBase 0
	// (the default) they are the lowest free uids of the host-wide pool
	// [DefaultUIDBase, DefaultUIDBase+DefaultUIDPoolSize), which every
	// instance on the host shares. An explicit UIDBase claims exactly
	// [UIDBase, UIDBase+UIDCount), and New fails if another live instance
	// holds one of them. The uids must not belong to anything else on the
	// host (keep them above /etc/subuid ranges). UIDCount default: 5
	// (MAX_CONCURRENT_DEPLOYMENTS).
	UIDBase  int
	UIDCount int

	// CgroupParent names the cgroup, below the service's own cgroup, that
	// holds one child cgroup per sandbox. New claims it host-wide (it fails
	// if another live instance has it); anything found in it is a leftover
	// of an earlier run and is killed and removed. Default: "libra-sandbox".
	CgroupParent string

	// HostLockDir holds the host-wide claims on build uids and cgroup
	// parents (see hostlock.go); every instance on a host must use the same
	// one. Default: /run/libra-deploy.
	HostLockDir string
	// NodeID names this instance in its claims, for an operator asking who
	// holds a uid. Default: the host name.
	NodeID string

	// MemoryLimit caps the sandbox's memory, page cache and tmpfs included
	// (cgroup memory). Default: 4 GiB, so that node's heap cap (3/4 of it,
	// see environment) stays at or above the 2 GiB where V8 grows its heap
	// fastest.
	MemoryLimit int64
	// PidsLimit caps processes plus threads (cgroup pids, and RLIMIT_NPROC
	// for the build uid). Default: 512.
	PidsLimit int
	// DiskLimit caps the bytes a sandbox keeps on the host disk: the project
	// directory plus the home directory plus what the cache grew by. Default:
	// 2 GiB.
	DiskLimit int64
	// MaxFiles caps the number of files and directories counted like
	// DiskLimit, so a build cannot exhaust inodes with empty files. Default:
	// 500000.
	MaxFiles int
	// FileSizeLimit is RLIMIT_FSIZE: no single file can grow past it. Default:
	// 1 GiB.
	FileSizeLimit int64
	// CPUTimeLimit is RLIMIT_CPU, per process. Default: 15 minutes.
	CPUTimeLimit time.Duration
	// OpenFilesLimit is RLIMIT_NOFILE. Default: 16384.
	OpenFilesLimit int
	// CPUQuota caps CPU use in cores (cgroup cpu.max / cfs quota); 0 means no
	// cap. Default: 0.
	CPUQuota float64
	// CPUWeight sets the cgroup v2 cpu.weight (1..10000, 100 is the kernel's
	// default); on v1 it becomes cpu.shares = weight*1024/100. 0 leaves the
	// kernel default. Default: 0.
	CPUWeight int
	// TmpSize caps the tmpfs at /tmp and at /dev/shm (each). Default: 1 GiB.
	TmpSize int64
	// DiskCheckInterval is the shortest time between two measurements of the
	// sandbox's disk use while a command runs; a measurement that takes long
	// stretches the interval so the walk never costs more than about 5% of a
	// core. Default: 1 s.
	DiskCheckInterval time.Duration

	// ExtraReadOnly lists host paths bound read-only at the same path, e.g.
	// "/usr/local" when node lives there (by default /usr/local is hidden
	// behind an empty tmpfs) or "/opt/node".
	ExtraReadOnly []string

	// ProxyAllowedHosts are the hosts the install phase may reach through the
	// proxy (exact names, or "*.example.com" for subdomains). Default: the
	// host of `npm config get registry`, or registry.npmjs.org.
	ProxyAllowedHosts []string
	// ProxyMaxConns caps the connections one sandbox's install proxy
	// holds at once; all sandboxes together are also held below what the
	// service's open files limit allows after a reserve. Default: 64.
	ProxyMaxConns int
	// ProxyPorts are the ports an allowed host without a port of its own may
	// be reached on. Default: 443.
	ProxyPorts []int
	// ProxyDeniedNets are refused in addition to the built-in list
	// (loopback, private, link-local, CGNAT, multicast, the host's own
	// addresses).
	ProxyDeniedNets []netip.Prefix

	// Logger receives the provider's own events (never build output).
	// Default: discard.
	Logger *slog.Logger
}

// Defaults for Config.
const (
	DefaultUIDBase        = 200000
	DefaultUIDPoolSize    = 1000
	DefaultUIDCount       = 5
	DefaultMemoryLimit    = 4 << 30
	DefaultPidsLimit      = 512
	DefaultDiskLimit      = 2 << 30
	DefaultMaxFiles       = 500000
	DefaultFileSizeLimit  = 1 << 30
	DefaultCPUTimeLimit   = 15 * time.Minute
	DefaultOpenFilesLimit = 16384
	DefaultTmpSize        = 1 << 30
	DefaultStateDir       = "/var/lib/libra-deploy/sandbox"
	DefaultCgroupParent   = "libra-sandbox"
	DefaultProxyMaxConns  = 64
)

// withDefaults fills in defaults and rejects values that cannot work.
func (c Config) withDefaults() (Config, error) {
	if c.BwrapPath == "" {
		c.BwrapPath = "bwrap"
	}
	if c.HelperPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("find own executable for the sandbox helper: %w", err)
		}
		c.HelperPath = exe
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.UIDCount == 0 {
		c.UIDCount = DefaultUIDCount
	}
	if c.HostLockDir == "" {
		c.HostLockDir = DefaultHostLockDir
	}
	if c.NodeID == "" {
		c.NodeID, _ = os.Hostname()
	}
	if c.CgroupParent == "" {
		c.CgroupParent = DefaultCgroupParent
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = DefaultMemoryLimit
	}
	if c.PidsLimit == 0 {
		c.PidsLimit = DefaultPidsLimit
	}
	if c.DiskLimit == 0 {
		c.DiskLimit = DefaultDiskLimit
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	if c.FileSizeLimit == 0 {
		c.FileSizeLimit = DefaultFileSizeLimit
	}
	if c.CPUTimeLimit == 0 {
		c.CPUTimeLimit = DefaultCPUTimeLimit
	}
	if c.OpenFilesLimit == 0 {
		c.OpenFilesLimit = DefaultOpenFilesLimit
	}
	if c.ProxyMaxConns == 0 {
		c.ProxyMaxConns = DefaultProxyMaxConns
	}
	if c.TmpSize == 0 {
		c.TmpSize = DefaultTmpSize
	}
	if c.DiskCheckInterval == 0 {
		c.DiskCheckInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}

	switch {
	case c.UIDBase == 0 && (c.UIDCount < 1 || c.UIDCount > DefaultUIDPoolSize):
		return c, fmt.Errorf("sandbox uid count %d: must be between 1 and %d", c.UIDCount, DefaultUIDPoolSize)
	case c.UIDBase != 0 && (c.UIDBase < 1000 || c.UIDCount < 1 || c.UIDBase+c.UIDCount > 1<<31-2):
		return c, fmt.Errorf("sandbox uid range %d+%d: must lie in [1000, 2^31-2)", c.UIDBase, c.UIDCount)
	case !filepath.IsAbs(c.HostLockDir):
		return c, fmt.Errorf("sandbox host lock dir %q: must be absolute", c.HostLockDir)
	case c.MemoryLimit < 16<<20:
		return c, fmt.Errorf("sandbox memory limit %d: below 16 MiB", c.MemoryLimit)
	case c.PidsLimit < 8:
		return c, fmt.Errorf("sandbox pids limit %d: below 8", c.PidsLimit)
	case c.DiskLimit < 1<<20 || c.FileSizeLimit < 1<<20 || c.TmpSize < 1<<20:
		return c, fmt.Errorf("sandbox disk, file size and tmp limits must be at least 1 MiB")
	case c.ProxyMaxConns < 1:
		return c, fmt.Errorf("sandbox proxy connections %d: must be at least 1", c.ProxyMaxConns)
	case c.MaxFiles < 100 || c.OpenFilesLimit < 64:
		return c, fmt.Errorf("sandbox file count limit must be at least 100 and open files at least 64")
	case c.CPUTimeLimit < time.Second:
		return c, fmt.Errorf("sandbox CPU time limit %s: below 1s", c.CPUTimeLimit)
	case c.CPUQuota < 0 || c.CPUWeight < 0 || c.CPUWeight > 10000:
		return c, fmt.Errorf("sandbox CPU quota %v / weight %d out of range", c.CPUQuota, c.CPUWeight)
	case !filepath.IsAbs(c.StateDir):
		return c, fmt.Errorf("sandbox state dir %q: must be absolute", c.StateDir)
	case c.CacheDir != "" && !filepath.IsAbs(c.CacheDir):
		return c, fmt.Errorf("sandbox cache dir %q: must be absolute", c.CacheDir)
	case filepath.IsAbs(c.CgroupParent) || c.CgroupParent != filepath.Clean(c.CgroupParent) ||
		c.CgroupParent == "." || strings.Contains("/"+c.CgroupParent+"/", "/../"):
		return c, fmt.Errorf("sandbox cgroup parent %q: must be a clean relative name", c.CgroupParent)
	}
	for _, p := range c.ExtraReadOnly {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return c, fmt.Errorf("sandbox read-only path %q: must be absolute and clean", p)
		}
	}
	return c, nil
}
