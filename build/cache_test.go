package build

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeClock returns a clock that moves one minute per call, so that saves
// in a test have distinct, ordered times.
func fakeClock() func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Minute)
		return t
	}
}

func newTestCache(t *testing.T) *Cache {
	c := NewCache(filepath.Join(t.TempDir(), "cache"))
	c.now = fakeClock()
	return c
}

// installTree writes a node_modules like a package manager leaves one: a
// package with an executable entry point, a .bin symlink to it, a
// directory symlink (pnpm style) and a read-only file.
func installTree(t *testing.T, projectDir, marker string) {
	t.Helper()
	writeTree(t, projectDir, map[string]string{
		"node_modules/vite/package.json":          `{"name":"vite","version":"` + marker + `"}`,
		"node_modules/vite/bin/vite.js":           "#!/usr/bin/env node\n",
		"node_modules/.pnpm/react@19/index.js":    "module.exports = 19",
		"node_modules/@scope/pkg/dist/readonly.d": "types",
	})
	nm := filepath.Join(projectDir, "node_modules")
	must(t, os.Chmod(filepath.Join(nm, "vite/bin/vite.js"), 0o755))
	must(t, os.Chmod(filepath.Join(nm, "@scope/pkg/dist/readonly.d"), 0o444))
	must(t, os.MkdirAll(filepath.Join(nm, ".bin"), 0o755))
	must(t, os.Symlink("../vite/bin/vite.js", filepath.Join(nm, ".bin/vite")))
	must(t, os.Symlink(".pnpm/react@19", filepath.Join(nm, "react")))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCacheRoundTrip(t *testing.T) {
	c := newTestCache(t)
	first := t.TempDir()
	installTree(t, first, "7.0.0")
	must(t, c.SaveNodeModules("org1", "key1", first))

	// The saved tree does not depend on the project it came from.
	must(t, os.RemoveAll(first))

	second := t.TempDir()
	ok, err := c.RestoreNodeModules("org1", "key1", second, -1, -1)
	if err != nil || !ok {
		t.Fatalf("RestoreNodeModules = %v, %v; want a hit", ok, err)
	}
	nm := filepath.Join(second, "node_modules")
	if got := readString(t, filepath.Join(nm, "vite/package.json")); !strings.Contains(got, "7.0.0") {
		t.Errorf("restored package.json = %q", got)
	}
	for link, want := range map[string]string{".bin/vite": "../vite/bin/vite.js", "react": ".pnpm/react@19"} {
		got, err := os.Readlink(filepath.Join(nm, link))
		if err != nil || got != want {
			t.Errorf("symlink %s = %q, %v; want %q", link, got, err, want)
		}
	}
	// The .bin link still works, and its target is still executable.
	fi, err := os.Stat(filepath.Join(nm, ".bin/vite"))
	if err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("restored .bin/vite: %v, mode %v", err, fi.Mode())
	}
	if got := readString(t, filepath.Join(nm, "react/index.js")); got != "module.exports = 19" {
		t.Errorf("through the directory link: %q", got)
	}

	// Restore moves the tree: a second restore of the same key misses, so
	// two builds never share one tree.
	third := t.TempDir()
	if ok, err := c.RestoreNodeModules("org1", "key1", third, -1, -1); ok || err != nil {
		t.Errorf("second restore = %v, %v; want a miss", ok, err)
	}
}

func TestCacheRestoreOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root")
	}
	c := newTestCache(t)
	src := t.TempDir()
	installTree(t, src, "1")
	must(t, c.SaveNodeModules("org1", "k", src))
	dst := t.TempDir()
	const uid, gid = 54321, 54322
	ok, err := c.RestoreNodeModules("org1", "k", dst, uid, gid)
	if err != nil || !ok {
		t.Fatalf("RestoreNodeModules = %v, %v", ok, err)
	}
	err = filepath.WalkDir(filepath.Join(dst, "node_modules"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
		if info.Mode()&fs.ModeSymlink == 0 && info.Mode().Perm()&0o200 == 0 {
			t.Errorf("%s is not writable by its owner: %v", p, info.Mode())
		}
		return nil
	})
	must(t, err)
}

func TestCacheIsolationAndMisses(t *testing.T) {
	c := newTestCache(t)
	src := t.TempDir()
	installTree(t, src, "a")
	must(t, c.SaveNodeModules("org-a", "k1", src))

	tests := []struct {
		name, org, key string
	}{
		{"another org, same key", "org-b", "k1"},
		{"same org, other key", "org-a", "k2"},
		{"an org id that tries to climb", "../org-a", "k1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := t.TempDir()
			ok, err := c.RestoreNodeModules(tt.org, tt.key, dst, -1, -1)
			if ok || err != nil {
				t.Fatalf("RestoreNodeModules = %v, %v; want a miss", ok, err)
			}
			if _, err := os.Lstat(filepath.Join(dst, "node_modules")); !os.IsNotExist(err) {
				t.Errorf("a miss left node_modules behind: %v", err)
			}
		})
	}
	// The org that saved it still has it.
	dst := t.TempDir()
	if ok, err := c.RestoreNodeModules("org-a", "k1", dst, -1, -1); !ok || err != nil {
		t.Fatalf("owner's restore = %v, %v", ok, err)
	}

	// Every org directory is a direct child of the root, whatever the id.
	entries, err := os.ReadDir(c.root)
	must(t, err)
	for _, e := range entries {
		if strings.Contains(e.Name(), "..") || strings.Contains(e.Name(), "/") {
			t.Errorf("org directory %q", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(c.root), "org-a")); !os.IsNotExist(err) {
		t.Errorf("an org directory escaped the root: %v", err)
	}
}

func TestCacheKeepsProjectNodeModules(t *testing.T) {
	c := newTestCache(t)
	src := t.TempDir()
	installTree(t, src, "cached")
	must(t, c.SaveNodeModules("org1", "k", src))

	dst := project(t, map[string]string{"node_modules/own/index.js": "mine"})
	ok, err := c.RestoreNodeModules("org1", "k", dst, -1, -1)
	if ok || err != nil {
		t.Fatalf("RestoreNodeModules over an existing node_modules = %v, %v", ok, err)
	}
	if got := readString(t, filepath.Join(dst, "node_modules/own/index.js")); got != "mine" {
		t.Errorf("the project's own node_modules changed: %q", got)
	}
	// The saved tree is still there for the next build.
	if ok, _ := c.RestoreNodeModules("org1", "k", t.TempDir(), -1, -1); !ok {
		t.Error("the saved tree was lost")
	}
}

func TestCacheEviction(t *testing.T) {
	c := newTestCache(t)
	for _, key := range []string{"k1", "k2", "k3", "k4"} {
		src := t.TempDir()
		installTree(t, src, key)
		must(t, c.SaveNodeModules("org1", key, src))
	}
	// Another org's trees do not count against org1, nor get evicted by it.
	other := t.TempDir()
	installTree(t, other, "o")
	must(t, c.SaveNodeModules("org2", "k1", other))

	entries, err := os.ReadDir(filepath.Join(c.root, "org1", "modules"))
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "k2,k3,k4" {
		t.Errorf("org1 keeps %v, want the newest three k2,k3,k4", names)
	}
	if ok, _ := c.RestoreNodeModules("org1", "k1", t.TempDir(), -1, -1); ok {
		t.Error("the oldest tree survived eviction")
	}
	dst := t.TempDir()
	if ok, _ := c.RestoreNodeModules("org1", "k4", dst, -1, -1); !ok {
		t.Fatal("the newest tree was evicted")
	}
	if got := readString(t, filepath.Join(dst, "node_modules/vite/package.json")); !strings.Contains(got, "k4") {
		t.Errorf("k4 restored %q", got)
	}
	if ok, _ := c.RestoreNodeModules("org2", "k1", t.TempDir(), -1, -1); !ok {
		t.Error("org2's tree was evicted by org1's saves")
	}
}

func TestCacheSaveReplacesSameKey(t *testing.T) {
	c := newTestCache(t)
	for _, marker := range []string{"old", "new"} {
		src := t.TempDir()
		installTree(t, src, marker)
		must(t, c.SaveNodeModules("org1", "k", src))
	}
	dst := t.TempDir()
	if ok, err := c.RestoreNodeModules("org1", "k", dst, -1, -1); !ok || err != nil {
		t.Fatalf("restore = %v, %v", ok, err)
	}
	if got := readString(t, filepath.Join(dst, "node_modules/vite/package.json")); !strings.Contains(got, "new") {
		t.Errorf("restored %q, want the newer save", got)
	}
	left, err := os.ReadDir(filepath.Join(c.root, "org1", "modules"))
	must(t, err)
	for _, e := range left {
		t.Errorf("left behind in modules/: %s", e.Name())
	}
}

func TestCacheSaveEdgeCases(t *testing.T) {
	c := newTestCache(t)

	// Nothing to save (Yarn Plug'n'Play): not an error.
	must(t, c.SaveNodeModules("org1", "k", t.TempDir()))

	// node_modules as a symlink to somewhere else is refused, not followed.
	elsewhere := project(t, map[string]string{"secret": "host file"})
	dir := t.TempDir()
	must(t, os.Symlink(elsewhere, filepath.Join(dir, "node_modules")))
	if err := c.SaveNodeModules("org1", "k", dir); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("save of a symlinked node_modules: %v", err)
	}

	// A symlink inside node_modules pointing out of it is kept as a link;
	// the file it points at is not copied in.
	dir = t.TempDir()
	installTree(t, dir, "x")
	must(t, os.Symlink(filepath.Join(elsewhere, "secret"), filepath.Join(dir, "node_modules", "leak")))
	must(t, c.SaveNodeModules("org1", "k", dir))
	saved, err := os.Lstat(filepath.Join(c.root, "org1", "modules", "k", "leak"))
	if err != nil || saved.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("saved leak: %v, %v; want a symlink", saved, err)
	}

	// Keys and org ids must be safe names.
	for _, key := range []string{"", "../x", "a/b", strings.Repeat("a", 200)} {
		if err := c.SaveNodeModules("org1", key, dir); err == nil {
			t.Errorf("SaveNodeModules accepted key %q", key)
		}
		if _, err := c.RestoreNodeModules("org1", key, t.TempDir(), -1, -1); err == nil {
			t.Errorf("RestoreNodeModules accepted key %q", key)
		}
	}
	if _, err := c.Dir(""); err == nil {
		t.Error("Dir accepted an empty org id")
	}
}

func TestCacheSavedTreeIsIndependentOfRemoval(t *testing.T) {
	// Save links files; deleting the project (cleanup) must not empty
	// the saved tree, and a file rewritten by replacement (as package
	// managers do: write elsewhere, rename over) must not alter it.
	c := newTestCache(t)
	src := t.TempDir()
	installTree(t, src, "orig")
	must(t, c.SaveNodeModules("org1", "k", src))
	p := filepath.Join(src, "node_modules/vite/package.json")
	tmp := p + ".tmp"
	must(t, os.WriteFile(tmp, []byte(`{"version":"changed"}`), 0o644))
	must(t, os.Rename(tmp, p))
	must(t, os.RemoveAll(src))

	dst := t.TempDir()
	if ok, err := c.RestoreNodeModules("org1", "k", dst, -1, -1); !ok || err != nil {
		t.Fatalf("restore = %v, %v", ok, err)
	}
	if got := readString(t, filepath.Join(dst, "node_modules/vite/package.json")); !strings.Contains(got, "orig") {
		t.Errorf("restored %q, want the saved content", got)
	}
}

func TestCachePackageManagerDirAndEnv(t *testing.T) {
	c := newTestCache(t)
	shared, err := c.PackageManagerDir("org1", -1, -1)
	must(t, err)
	if want := filepath.Join(c.root, "org1", "pm", "shared"); shared != want {
		t.Errorf("PackageManagerDir = %q, want %q", shared, want)
	}
	other, err := c.PackageManagerDir("org2", -1, -1)
	must(t, err)
	if other == shared {
		t.Error("two orgs share a package-manager cache")
	}
	if os.Geteuid() == 0 {
		perUID, err := c.PackageManagerDir("org1", 54321, 54321)
		must(t, err)
		if filepath.Base(perUID) != "54321" {
			t.Errorf("per-uid dir = %q", perUID)
		}
		fi, err := os.Stat(perUID)
		must(t, err)
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 54321 || fi.Mode().Perm() != 0o700 {
			t.Errorf("per-uid dir owned by %d with mode %v", st.Uid, fi.Mode())
		}
	}

	tests := []struct {
		pm   string
		want map[string]string
	}{
		{"npm", map[string]string{"npm_config_cache": "/cache/npm"}},
		{"pnpm", map[string]string{"npm_config_store_dir": "/cache/pnpm-store", "pnpm_config_store_dir": "/cache/pnpm-store", "npm_config_confirm_modules_purge": "false"}},
		{"yarn", map[string]string{"YARN_CACHE_FOLDER": "/cache/yarn", "YARN_GLOBAL_FOLDER": "/cache/yarn-global"}},
		{"bun", map[string]string{"BUN_INSTALL_CACHE_DIR": "/cache/bun"}},
	}
	for _, tt := range tests {
		env := c.Env(tt.pm, "/cache")
		for k, v := range tt.want {
			if env[k] != v {
				t.Errorf("Env(%s)[%s] = %q, want %q", tt.pm, k, env[k], v)
			}
		}
		for k, v := range env {
			if !strings.HasPrefix(v, "/cache/") && v != "false" {
				t.Errorf("Env(%s)[%s] = %q points outside the mount", tt.pm, k, v)
			}
		}
	}
	if _, ok := c.Env("npm", "/cache")["npm_config_confirm_modules_purge"]; ok {
		t.Error("npm gets a pnpm-only setting (npm warns about unknown config)")
	}
}

func TestCacheAcrossFilesystems(t *testing.T) {
	// Rename and hard links fail across filesystems; both must fall back
	// to copying. /dev/shm is a tmpfs on Linux hosts that have one.
	shm, err := os.MkdirTemp("/dev/shm", "libra-cache-test-")
	if err != nil {
		t.Skip("no /dev/shm:", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	var a, b syscall.Stat_t
	must(t, syscall.Stat(shm, &a))
	must(t, syscall.Stat(t.TempDir(), &b))
	if a.Dev == b.Dev {
		t.Skip("/dev/shm is on the same filesystem as the temporary directory")
	}
	c := NewCache(shm)
	c.now = fakeClock()
	src := t.TempDir()
	installTree(t, src, "xdev")
	must(t, c.SaveNodeModules("org1", "k", src))
	for i := range 2 { // the saved tree stays: a copy shares nothing with it
		dst := t.TempDir()
		ok, err := c.RestoreNodeModules("org1", "k", dst, -1, -1)
		if !ok || err != nil {
			t.Fatalf("restore %d = %v, %v", i, ok, err)
		}
		if got, err := os.Readlink(filepath.Join(dst, "node_modules/.bin/vite")); err != nil || got != "../vite/bin/vite.js" {
			t.Errorf(".bin/vite = %q, %v", got, err)
		}
		if got := readString(t, filepath.Join(dst, "node_modules/vite/package.json")); !strings.Contains(got, "xdev") {
			t.Errorf("restored %q", got)
		}
	}
}

// TestCacheLeavesOutBunCache: bun's package cache, which the sandbox keeps
// in node_modules/.cache/bun so that bun can hard-link from it, is not
// saved with node_modules; other tools' caches there are.
func TestCacheLeavesOutBunCache(t *testing.T) {
	c := newTestCache(t)
	project := t.TempDir()
	installTree(t, project, "7.0.0")
	writeTree(t, project, map[string]string{
		"node_modules/.cache/bun/0123abcd.npm/package.json": `{"name":"react"}`,
		"node_modules/.cache/babel-loader/entry.json":       "{}",
	})
	must(t, c.SaveNodeModules("org1", "key1", project))
	restored := t.TempDir()
	if ok, err := c.RestoreNodeModules("org1", "key1", restored, -1, -1); err != nil || !ok {
		t.Fatalf("RestoreNodeModules = %v, %v; want a hit", ok, err)
	}
	nm := filepath.Join(restored, "node_modules")
	if _, err := os.Lstat(filepath.Join(nm, ".cache/bun")); !os.IsNotExist(err) {
		t.Errorf("bun's cache was saved and restored: %v", err)
	}
	for _, p := range []string{".cache/babel-loader/entry.json", "vite/package.json"} {
		if _, err := os.Lstat(filepath.Join(nm, p)); err != nil {
			t.Errorf("%s not restored: %v", p, err)
		}
	}
}
