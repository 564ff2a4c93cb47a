package bwrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/fsname"
)

// Provider is the "local" libra.SandboxProvider.
type Provider struct {
	cfg     Config
	bwrap   string // absolute path of bwrap
	helper  string // the helper's copy in StateDir
	etcDir  string // generated /etc files
	boxes   string // one directory per live sandbox
	seccomp []byte
	static  []string // bwrap options shared by every sandbox
	cg      cgroupManager
	proxy   ProxyConfig
	lock    *os.File         // flock on StateDir: one provider per StateDir
	cgLock  *os.File         // host-wide claim on the cgroup parent
	slots   map[int]*uidSlot // the build uids claimed host-wide; fixed after New
	uids    chan int         // free build uids, all of them in slots

	mu          sync.Mutex
	cachesInUse map[string]bool // org cache directories bound by a live sandbox
	checkedAt   time.Time       // last successful Check
}

var _ libra.SandboxProvider = (*Provider)(nil)

// checkTTL is how long a successful Check is trusted: /health may be polled
// often, and each full check starts a sandbox.
const checkTTL = 10 * time.Second

// New prepares the provider: it needs root (to start bwrap as build uids,
// hand directories to them and manage cgroups), bwrap, and a cgroup
// hierarchy with memory and pids. Leftovers of an earlier process (sandbox
// directories, cgroups) are cleaned up.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("local sandbox: the service must run as root to start builds as unprivileged uids and manage cgroups")
	}
	bw, err := exec.LookPath(cfg.BwrapPath)
	if err != nil {
		return nil, fmt.Errorf("local sandbox: bubblewrap not found (install the bubblewrap package): %w", err)
	}
	if bw, err = filepath.Abs(bw); err != nil {
		return nil, fmt.Errorf("local sandbox: %w", err)
	}
	prog, err := seccompProgram()
	if err != nil {
		return nil, fmt.Errorf("local sandbox: %w", err)
	}
	p := &Provider{
		cfg:         cfg,
		bwrap:       bw,
		helper:      filepath.Join(cfg.StateDir, "helper"),
		etcDir:      filepath.Join(cfg.StateDir, "etc"),
		boxes:       filepath.Join(cfg.StateDir, "boxes"),
		seccomp:     prog,
		uids:        make(chan int, cfg.UIDCount),
		cachesInUse: map[string]bool{},
	}
	if err := p.init(ctx); err != nil {
		p.release()
		return nil, fmt.Errorf("local sandbox: %w", err)
	}
	cfg.Logger.Info("local sandbox ready", "bwrap", bw, "cgroup", p.cg.version(), "cgroup_parent", cfg.CgroupParent,
		"uids", p.uidList(), "node_id", cfg.NodeID, "proxy_allow", p.proxy.AllowedHosts)
	return p, nil
}

// release undoes what a failed init did. The cgroup parent is only removed
// when it is ours: p.cg is set once its lock is held.
func (p *Provider) release() {
	if p.cg != nil {
		_ = p.cg.close()
	}
	if p.cgLock != nil {
		_ = unlockRemove(p.cgLock)
	}
	for _, s := range p.slots {
		s.f.Close()
	}
	if p.lock != nil {
		p.lock.Close()
	}
}

func (p *Provider) init(ctx context.Context) error {
	cfg := p.cfg
	if err := p.prepareStateDir(); err != nil {
		return err
	}
	var err error
	if p.static, err = p.staticArgs(); err != nil {
		return err
	}
	hosts := cfg.ProxyAllowedHosts
	if len(hosts) == 0 {
		hosts = DefaultRegistryHosts(ctx)
	}
	shared, err := proxySharedLimit(cfg.ProxyMaxConns, cfg.UIDCount)
	if err != nil {
		return err
	}
	p.proxy = ProxyConfig{
		AllowedHosts: hosts, AllowedPorts: cfg.ProxyPorts, DeniedNets: cfg.ProxyDeniedNets,
		MaxConns: cfg.ProxyMaxConns, shared: shared, Logger: cfg.Logger,
	}
	if _, err := NewProxy(p.proxy); err != nil {
		return err
	}
	if err := p.claimCgroup(); err != nil {
		return err
	}
	return p.claimUIDs()
}

// claimCgroup takes the cgroup parent host-wide, empties it of an earlier
// run's leftovers, and removes the parents of dead instances next to it.
func (p *Provider) claimCgroup() error {
	cfg := p.cfg
	if err := prepareHostLockDir(cfg.HostLockDir); err != nil {
		return err
	}
	cg, err := newCgroupManager(cfg.CgroupParent, cgroupLimits{
		memory: cfg.MemoryLimit, pids: cfg.PidsLimit, cpuQuota: cfg.CPUQuota, cpuWeight: cfg.CPUWeight,
	})
	if err != nil {
		return err
	}
	if p.cgLock, err = lockCgroupParent(cfg.HostLockDir, cg, cfg.NodeID); err != nil {
		return err
	}
	p.cg = cg
	if err := p.cg.removeStale(); err != nil {
		return fmt.Errorf("remove leftover cgroups: %w", err)
	}
	// Not fatal: a dead instance's cgroup that cannot be removed now is
	// tried again by the next start, and costs nothing but a directory.
	if err := removeDeadSiblings(cfg.HostLockDir, cg, cfg.Logger); err != nil {
		cfg.Logger.Warn("could not remove a dead instance's cgroups", "err", err)
	}
	return nil
}

// claimUIDs takes the build uids host-wide and fills the free pool.
func (p *Provider) claimUIDs() error {
	cfg := p.cfg
	req := slotRequest{dir: cfg.HostLockDir, base: cfg.UIDBase, span: cfg.UIDCount, want: cfg.UIDCount, node: cfg.NodeID, exact: true}
	if cfg.UIDBase == 0 {
		req.base, req.span, req.exact = DefaultUIDBase, DefaultUIDPoolSize, false
	}
	slots, err := claimUIDs(req, cfg.Logger)
	if err != nil {
		return err
	}
	p.slots = make(map[int]*uidSlot, len(slots))
	for _, s := range slots {
		p.slots[s.uid] = s
		p.uids <- s.uid
	}
	return nil
}

// uidList is the claimed uids, ascending, for a log line.
func (p *Provider) uidList() string {
	slots := make([]*uidSlot, 0, len(p.slots))
	for _, s := range p.slots {
		slots = append(slots, s)
	}
	slices.SortFunc(slots, func(a, b *uidSlot) int { return a.uid - b.uid })
	return uidList(slots)
}

// proxySharedLimit is the cap all sandboxes' proxies draw from: what every
// sandbox may hold at once, or less if the open files limit minus its
// reserve cannot pay for that.
func proxySharedLimit(perSandbox, sandboxes int) (connLimit, error) {
	budget, err := proxyConnBudget()
	if err != nil {
		return nil, err
	}
	return newConnLimit(min(budget, perSandbox*sandboxes)), nil
}

// prepareStateDir lays out StateDir: root-owned, searchable but not
// listable by the build uids, which only ever need to reach their own paths
// in it.
func (p *Provider) prepareStateDir() error {
	for _, d := range []string{p.cfg.StateDir, p.etcDir, p.boxes} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
	}
	// Two providers sharing a StateDir would delete each other's sandboxes
	// as leftovers.
	lock, err := os.OpenFile(filepath.Join(p.cfg.StateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return fmt.Errorf("state dir %s is in use by another process: %w", p.cfg.StateDir, err)
	}
	p.lock = lock
	if err := checkSearchable(p.cfg.StateDir); err != nil {
		return err
	}
	if p.cfg.CacheDir != "" {
		if err := os.MkdirAll(p.cfg.CacheDir, 0o711); err != nil {
			return err
		}
		if err := checkSearchable(p.cfg.CacheDir); err != nil {
			return err
		}
		if err := removeLegacyCaches(p.cfg.CacheDir); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(p.cfg.CacheDir, orgCachesDir), 0o711); err != nil {
			return err
		}
	}
	for name, content := range generatedEtc {
		if err := writeFileAtomic(filepath.Join(p.etcDir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := installHelper(p.cfg.HelperPath, p.helper); err != nil {
		return err
	}
	// Sandboxes of a process that died: their processes died with it
	// (--die-with-parent), their directories are just files.
	entries, err := os.ReadDir(p.boxes)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(p.boxes, e.Name())); err != nil {
			return fmt.Errorf("remove leftover sandbox: %w", err)
		}
	}
	return nil
}

// checkSearchable fails unless every directory from / to path (inclusive)
// can be traversed by any uid: bubblewrap resolves its bind sources as the
// unprivileged build uid.
func checkSearchable(path string) error {
	for d := filepath.Clean(path); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %v) is not searchable by other users; the build uids must be able to traverse it (chmod o+x)", d, fi.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// installHelper copies the helper binary to dst: the original may sit in a
// directory the build uids cannot traverse (go test's build directory is
// 0700), and the copy cannot change under a running sandbox.
func installHelper(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open sandbox helper: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".helper-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy sandbox helper: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Close kills whatever still runs in any sandbox and removes the provider's
// cgroups. Call it at shutdown, after the last Destroy; the provider is
// unusable afterwards.
func (p *Provider) Close() error {
	err := p.cg.close()
	if err == nil {
		// Otherwise a build may still run: the parent and the uids stay
		// claimed until this process is gone.
		err = unlockRemove(p.cgLock)
		for _, s := range p.slots {
			s.f.Close()
		}
	}
	if p.lock != nil {
		p.lock.Close()
	}
	if err != nil {
		return fmt.Errorf("local sandbox: %w", err)
	}
	return nil
}

// Name is the provider's configuration name.
func (p *Provider) Name() string { return "local" }

// CgroupVersion reports which cgroup hierarchy the provider uses ("v1" or
// "v2").
func (p *Provider) CgroupVersion() string { return p.cg.version() }

// Check starts a real sandbox as a build uid and runs /bin/true in it, which
// proves bwrap, the helper, the cgroups and the uid switch all work. When
// every uid is busy, builds are evidently running and Check passes without
// starting another. A success is remembered for a few seconds.
func (p *Provider) Check(ctx context.Context) error {
	p.mu.Lock()
	fresh := time.Since(p.checkedAt) < checkTTL
	p.mu.Unlock()
	if fresh {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("local sandbox: not running as root")
	}
	if _, err := os.Stat(p.bwrap); err != nil {
		return fmt.Errorf("local sandbox: bubblewrap: %w", err)
	}
	var uid int
	select {
	case uid = <-p.uids:
	default:
		return nil
	}
	work, err := os.MkdirTemp(p.cfg.StateDir, "check-")
	if err != nil {
		p.uids <- uid
		return fmt.Errorf("local sandbox: %w", err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o711); err != nil {
		p.uids <- uid
		return fmt.Errorf("local sandbox: %w", err)
	}
	sb, err := p.create(uid, libra.SandboxOptions{DeploymentID: "check", WorkDir: work})
	if err != nil {
		return fmt.Errorf("local sandbox: check: %w", err)
	}
	var out []string
	code, runErr := sb.Run(ctx, libra.Command{
		Args:    []string{"/bin/true"},
		Timeout: 30 * time.Second,
		Output:  func(l string) { out = append(out, l) },
	})
	destroyErr := sb.Destroy(context.WithoutCancel(ctx))
	switch {
	case runErr != nil:
		return fmt.Errorf("local sandbox: check: %w", runErr)
	case code != 0:
		return fmt.Errorf("local sandbox: check: /bin/true exited %d: %v", code, out)
	case destroyErr != nil:
		return fmt.Errorf("local sandbox: check: %w", destroyErr)
	}
	p.mu.Lock()
	p.checkedAt = time.Now()
	p.mu.Unlock()
	return nil
}

// Create hands the project directory to a free build uid and prepares the
// sandbox's home, cache and cgroup. It waits for a free uid when all are in
// use, until ctx ends.
func (p *Provider) Create(ctx context.Context, opts libra.SandboxOptions) (libra.Sandbox, error) {
	if err := validateWorkDir(opts.WorkDir); err != nil {
		return nil, err
	}
	var uid int
	select {
	case uid = <-p.uids:
	case <-ctx.Done():
		return nil, fmt.Errorf("local sandbox: waiting for a free build uid: %w", ctx.Err())
	}
	sb, err := p.create(uid, opts)
	if err != nil {
		return nil, err
	}
	return sb, nil
}

func validateWorkDir(dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("local sandbox: work dir %q must be an absolute clean path", dir)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("local sandbox: work dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("local sandbox: work dir %s is not a directory", dir)
	}
	if err := checkSearchable(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("local sandbox: work dir: %w", err)
	}
	return nil
}

// create builds a sandbox for uid, which the caller took from the pool. On
// failure everything is undone and uid goes back.
func (p *Provider) create(uid int, opts libra.SandboxOptions) (_ *sandbox, err error) {
	s := &sandbox{
		p:       p,
		uid:     uid,
		name:    "b" + strconv.Itoa(uid),
		workDir: opts.WorkDir,
		opts:    opts,
	}
	s.box = filepath.Join(p.boxes, s.name)
	s.home = filepath.Join(s.box, "home")
	defer func() {
		if err != nil {
			if derr := s.Destroy(context.Background()); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()

	fi, err := os.Stat(s.workDir)
	if err != nil {
		return nil, fmt.Errorf("local sandbox: %w", err)
	}
	s.workOwner = ownerOf(fi)

	if err := os.RemoveAll(s.box); err != nil {
		return nil, fmt.Errorf("local sandbox: %w", err)
	}
	if err := os.Mkdir(s.box, 0o711); err != nil {
		return nil, fmt.Errorf("local sandbox: %w", err)
	}
	s.chooseCache()
	// Recorded before anything becomes the uid's: if this process dies
	// before Destroy, the uid's next holder takes these paths back.
	if err := p.slots[uid].record(s.handedPaths()); err != nil {
		return nil, fmt.Errorf("local sandbox: %w", err)
	}
	if err := mkdirOwned(s.home, uid); err != nil {
		return nil, err
	}
	if err := s.prepareCache(); err != nil {
		return nil, err
	}

	// The project becomes the build's. Destroy gives it back.
	s.workChowned = true
	if err := chownTree(s.workDir, uid, uid); err != nil {
		return nil, fmt.Errorf("local sandbox: work dir: %w", err)
	}
	if s.cg, err = p.cg.create(s.name); err != nil {
		return nil, fmt.Errorf("local sandbox: %w", err)
	}
	p.cfg.Logger.Debug("sandbox created", "deployment", opts.DeploymentID, "uid", uid, "shared_cache", s.cacheKey != "")
	return s, nil
}

// chooseCache picks the org's shared cache if no other sandbox holds it,
// else a private one inside the box.
func (s *sandbox) chooseCache() {
	p := s.p
	s.cacheDir = filepath.Join(s.box, "cache")
	// A sandbox without an org (Check's) has nobody to share a cache with.
	if p.cfg.CacheDir == "" || s.opts.OrgID == "" {
		return
	}
	key := orgCacheKey(s.opts.OrgID)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cachesInUse[key] {
		p.cachesInUse[key] = true
		s.cacheKey = key
		s.cacheDir = filepath.Join(p.cfg.CacheDir, key)
	}
}

// prepareCache gives the chosen cache to the build uid and, for a shared
// one, measures what it holds so that only its growth counts as the
// build's disk use.
func (s *sandbox) prepareCache() error {
	if s.cacheKey == "" {
		// No shared cache, or another build of the same org holds it: a
		// private cache is slower but cannot be corrupted by two uids.
		return mkdirOwned(s.cacheDir, s.uid)
	}
	if err := os.MkdirAll(s.cacheDir, 0o700); err != nil {
		return fmt.Errorf("local sandbox: %w", err)
	}
	if err := chownTree(s.cacheDir, s.uid, s.uid); err != nil {
		return fmt.Errorf("local sandbox: cache: %w", err)
	}
	u, err := measureTree(s.cacheDir)
	if err != nil {
		return fmt.Errorf("local sandbox: cache: %w", err)
	}
	s.cacheBase = u
	return nil
}

// handedPaths are the trees create gives to the build uid, with the
// owners Destroy gives them back to.
func (s *sandbox) handedPaths() []handedPath {
	root := handedPath{Path: s.box, UID: os.Geteuid(), GID: os.Getegid()}
	paths := []handedPath{root, {Path: s.workDir, UID: s.workOwner[0], GID: s.workOwner[1]}}
	if s.cacheKey != "" {
		root.Path = s.cacheDir
		paths = append(paths, root)
	}
	return paths
}

func mkdirOwned(dir string, uid int) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("local sandbox: %w", err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		return fmt.Errorf("local sandbox: %w", err)
	}
	return nil
}

// orgCachesDir holds one cache per org, named by fsname.ID. Caches of
// earlier versions sat directly in CacheDir as "org-<id or hash>", a
// mapping that two orgs could share; New deletes them.
const orgCachesDir = "orgs"

// orgCacheKey names an org's cache directory, relative to CacheDir.
func orgCacheKey(org string) string {
	return filepath.Join(orgCachesDir, fsname.ID(org))
}

// removeLegacyCaches deletes the per-org caches of the old layout: one of
// them may hold files planted by another org that shared its name.
func removeLegacyCaches(cacheDir string) error {
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return fmt.Errorf("read cache dir: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "org-") {
			if err := os.RemoveAll(filepath.Join(cacheDir, e.Name())); err != nil {
				return fmt.Errorf("remove old org cache: %w", err)
			}
		}
	}
	return nil
}
