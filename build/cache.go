package build

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/fsname"
)

// Cache is the build cache on local disk, one directory per org:
//
//	<root>/<org>/pm/<uid>/      package-manager caches (npm's _cacache, the
//	                            pnpm store, ...), bind-mounted read-write into
//	                            the sandbox; see PackageManagerDir and Env
//	<root>/<org>/modules/<key>  saved node_modules trees, one per cache key;
//	                            never mounted into a sandbox
//
// Orgs never share anything: one org's build cannot read what another org's
// build downloaded, nor plant files that another org's build would run.
//
// node_modules trees move by rename: restoring one is a single rename, as
// fast as it gets, and saving one links every file (a hard link per file,
// no data copied). Both need <root> on the same filesystem as the project
// directories; across filesystems they fall back to copying.
type Cache struct {
	root string
	// Keep is how many node_modules trees each org keeps; the oldest saves
	// are removed first. NewCache sets it to 3.
	Keep int
	// now is the clock, replaceable in tests.
	now func() time.Time
}

// NewCache returns the cache kept under root. Nothing is created until used.
func NewCache(root string) *Cache {
	return &Cache{root: root, Keep: 3, now: time.Now}
}

var (
	safeKeyRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// orgDirName returns the directory name for an org: fsname.ID, which is
// injective, so no org id can name another org's directory.
func orgDirName(orgID string) (string, error) {
	if orgID == "" {
		return "", errors.New("build cache: empty org id")
	}
	return fsname.ID(orgID), nil
}

// Dir returns the org's cache directory, <root>/<org>, creating it. Only
// the service may enter it: what a sandbox needs from it is bound in
// separately.
func (c *Cache) Dir(orgID string) (string, error) {
	name, err := orgDirName(orgID)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(c.root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("build cache: %w", err)
	}
	return dir, nil
}

// PackageManagerDir returns the host directory to bind, read-write, at the
// sandbox mount point passed to Env, creating it owned by uid:gid. The
// directories above it stay private to the service (mode 0700), so the
// bind mount must be set up with the service's privileges (bubblewrap
// started by the service before it switches to the build uid), not by a
// process already running as the build uid.
//
// Each build uid gets its own directory within the org. A build uid runs one
// build at a time, so no two builds ever write into the same package-manager
// cache at once, and the files there are always the build's own: the cache
// never needs a recursive chown, and never hands one build a cache another
// is half-way through writing. The cost is up to one copy per concurrent
// build slot per org. A uid below 0 (no uid separation, e.g. a remote
// sandbox) gets a single shared directory, left owned by the service.
func (c *Cache) PackageManagerDir(orgID string, uid, gid int) (string, error) {
	dir, err := c.Dir(orgID)
	if err != nil {
		return "", err
	}
	slot := "shared"
	if uid >= 0 {
		slot = strconv.Itoa(uid)
	}
	pm := filepath.Join(dir, "pm", slot)
	if err := os.MkdirAll(pm, 0o700); err != nil {
		return "", fmt.Errorf("build cache: %w", err)
	}
	if uid >= 0 {
		if err := os.Lchown(pm, uid, gid); err != nil {
			return "", fmt.Errorf("build cache: %w", err)
		}
	}
	return pm, nil
}

// Env returns the environment that points the package manager's caches
// into mount, the sandbox-side path where PackageManagerDir is bound. It
// names sandbox paths only: which org's cache is behind mount is decided by
// what the caller binds there, so Env needs no org.
//
// npm's cache is set for every package manager because build scripts call
// npx whatever installed the project.
func (c *Cache) Env(pm, mount string) map[string]string {
	at := func(sub string) string { return path.Join(mount, sub) }
	env := map[string]string{
		"npm_config_cache": at("npm"),
		// Tools that keep their own downloads under the XDG cache (pnpm's
		// metadata among them) keep them in the org's cache too.
		"XDG_CACHE_HOME": at("xdg"),
	}
	switch pm {
	case "pnpm":
		// pnpm reads its settings from npm_config_* and, in recent
		// versions, pnpm_config_*; both are set so either version finds
		// them.
		for _, prefix := range []string{"npm_config_", "pnpm_config_"} {
			env[prefix+"store_dir"] = at("pnpm-store")
			env[prefix+"cache_dir"] = at("pnpm-cache")
			// A restored node_modules that pnpm wants to rebuild would
			// otherwise make it ask for confirmation, which fails with no
			// terminal.
			env[prefix+"confirm_modules_purge"] = "false"
		}
	case "yarn":
		env["YARN_CACHE_FOLDER"] = at("yarn")         // yarn 1, and yarn 2+ without the global cache
		env["YARN_GLOBAL_FOLDER"] = at("yarn-global") // yarn 2+ keeps its global cache here
	case "bun":
		env["BUN_INSTALL_CACHE_DIR"] = at("bun")
	}
	return env
}

func (c *Cache) modulesDir(orgID string) (string, error) {
	dir, err := c.Dir(orgID)
	if err != nil {
		return "", err
	}
	modules := filepath.Join(dir, "modules")
	if err := os.MkdirAll(modules, 0o700); err != nil {
		return "", fmt.Errorf("build cache: %w", err)
	}
	return modules, nil
}

func checkKey(key string) error {
	if !safeKeyRe.MatchString(key) {
		return fmt.Errorf("build cache: invalid key %q", key)
	}
	return nil
}

// RestoreNodeModules moves the org's node_modules saved under key into
// projectDir/node_modules and reports whether there was one. The saved
// tree is moved, not copied: restoring is one rename, and the build then
// owns its node_modules outright, so nothing it writes there can change
// what another build restores. Save the tree again after the install.
//
// uid and gid, when not below 0, become the owner of every restored file,
// and directories and files are made writable by their owner, so that the
// build's package manager (running as that uid) can update the tree. A
// project that brought its own node_modules keeps it, and nothing is
// restored.
//
// On error nothing is left in projectDir; callers may treat an error as a
// cache miss and log it.
func (c *Cache) RestoreNodeModules(orgID, key, projectDir string, uid, gid int) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	modules, err := c.modulesDir(orgID)
	if err != nil {
		return false, err
	}
	dst := filepath.Join(projectDir, "node_modules")
	if _, err := os.Lstat(dst); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("build cache: %w", err)
	}

	src := filepath.Join(modules, key)
	err = os.Rename(src, dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case isCrossDevice(err):
		// Another filesystem: copy, and keep the saved tree, since the
		// copy shares nothing with it.
		if err := copyTree(src, dst, false); err != nil {
			os.RemoveAll(dst)
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return false, fmt.Errorf("build cache: restore: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("build cache: restore: %w", err)
	}
	if err := handOver(dst, uid, gid); err != nil {
		os.RemoveAll(dst)
		return false, fmt.Errorf("build cache: restore: %w", err)
	}
	return true, nil
}

// handOver makes uid:gid the owner of every entry under root (uid < 0: the
// owner is left alone, for a sandbox that hands the tree over itself) and
// makes directories and files writable by their owner.
// Symbolic links are changed themselves, never followed.
func handOver(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if uid >= 0 {
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := info.Mode().Perm() | 0o200
		if d.IsDir() {
			want |= 0o700
		}
		// Setting only permission bits also drops set-user-id and
		// set-group-id bits that a build may have left on its files.
		if want != info.Mode().Perm() || info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			return os.Chmod(p, want)
		}
		return nil
	})
}

// SaveNodeModules stores projectDir/node_modules as the org's tree for key,
// replacing any older one of that key, and then removes the org's oldest
// trees beyond Keep. A project without node_modules (Yarn Plug'n'Play) is
// not an error: there is nothing to save.
//
// Files are hard-linked, not copied, so saving costs one link per file and
// no disk space. The saved tree shares those files with projectDir: call
// Save once the build is over (whether it succeeded or not, as long as the
// install did), and do not let anything write into projectDir afterwards.
// Whatever the org's own install and build scripts left in node_modules is
// saved with it; it is only ever restored for the same org.
func (c *Cache) SaveNodeModules(orgID, key, projectDir string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	src := filepath.Join(projectDir, "node_modules")
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("build cache: save: %w", err)
	}
	if !fi.IsDir() {
		// A symbolic link planted by the build must not make us copy
		// whatever it points at.
		return errors.New("build cache: save: node_modules is not a directory")
	}
	modules, err := c.modulesDir(orgID)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(modules, ".tmp-")
	if err != nil {
		return fmt.Errorf("build cache: save: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once tmp has been renamed
	staged := filepath.Join(tmp, "node_modules")
	if err := copyTree(src, staged, true); err != nil {
		return fmt.Errorf("build cache: save: %w", err)
	}
	final := filepath.Join(modules, key)
	// Move an older tree of the same key aside first: rename does not
	// replace a non-empty directory, and removing it in place could hand a
	// concurrent restore a half-deleted tree.
	if err := discard(modules, final); err != nil {
		return fmt.Errorf("build cache: save: %w", err)
	}
	if err := os.Rename(staged, final); err != nil {
		if _, statErr := os.Lstat(final); statErr == nil {
			// A concurrent save of the same key won; its tree is as good.
			return nil
		}
		return fmt.Errorf("build cache: save: %w", err)
	}
	// The tree's mtime is its save time, which eviction sorts by. Set
	// after the rename, which may touch it; a restore may already have
	// taken the tree, which is fine.
	now := c.now()
	if err := os.Chtimes(final, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("build cache: save: %w", err)
	}
	return c.evict(modules)
}

// discard removes p by first renaming it to a hidden name in dir, so that
// nobody can restore it while it is being deleted. A missing p is fine.
func discard(dir, p string) error {
	trash := filepath.Join(dir, ".trash-"+randomName())
	if err := os.Rename(p, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(trash)
}

// staleTemp is the age after which a hidden .tmp- or .trash- directory is
// taken to be the leftover of a crash rather than a save in progress.
const staleTemp = time.Hour

// evict keeps the Keep most recently saved trees of one org's modules
// directory and removes the rest, along with leftovers of crashed saves.
func (c *Cache) evict(modules string) error {
	entries, err := os.ReadDir(modules)
	if err != nil {
		return fmt.Errorf("build cache: evict: %w", err)
	}
	type saved struct {
		name string
		at   time.Time
	}
	var trees []saved
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile by a restore
		}
		if strings.HasPrefix(e.Name(), ".") {
			if c.now().Sub(info.ModTime()) > staleTemp {
				os.RemoveAll(filepath.Join(modules, e.Name()))
			}
			continue
		}
		trees = append(trees, saved{e.Name(), info.ModTime()})
	}
	sort.Slice(trees, func(i, j int) bool {
		if !trees[i].at.Equal(trees[j].at) {
			return trees[i].at.After(trees[j].at)
		}
		return trees[i].name < trees[j].name
	})
	keep := max(c.Keep, 1)
	var firstErr error
	for _, t := range trees[min(keep, len(trees)):] {
		if err := discard(modules, filepath.Join(modules, t.name)); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("build cache: evict: %w", err)
		}
	}
	return firstErr
}

func isCrossDevice(err error) bool { return errors.Is(err, syscall.EXDEV) }

func randomName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
