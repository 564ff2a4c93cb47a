package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBuildWithPrivateDataDirParent: a data directory below a 0700 parent
// (a checkout under /root) still gets working builds, because everything a
// build uid must reach lives under the default sandbox root instead.
func TestBuildWithPrivateDataDirParent(t *testing.T) {
	// SANDBOX_ROOT and SANDBOX_CGROUP empty: the defaults, not the
	// helper's per-test ones.
	s := startServer(t, "SANDBOX_ROOT=", "SANDBOX_CGROUP=")
	parent := filepath.Dir(s.dataDir)
	if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the data directory's parent should be private (0700): %v %v", fi.Mode(), err)
	}
	tok := s.setup("acme", "private")
	r := deployFiles(s, tok, "acme", "private", files(
		"package.json", `{"name":"private","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js", `require("fs").mkdirSync("dist");require("fs").writeFileSync("dist/index.html","<p>built in "+process.cwd()+"</p>")`,
	))
	st := s.waitFinal(r.str("deploymentId"), 90*time.Second)
	if st.str("status") != "completed" {
		t.Fatalf("build below a private data dir parent: %s", st.body)
	}
	site := s.do("GET", "/", nil, "Host", "private.localhost:"+s.port)
	if site.status != 200 || !strings.Contains(string(site.body), "built in") {
		t.Fatalf("site: %d %s", site.status, site.body)
	}
	s.waitLog(regexp.MustCompile(`"sandbox_root":"[^"]+"`), 10*time.Second)
	root := regexp.MustCompile(`"sandbox_root":"([^"]+)"`).FindStringSubmatch(s.logs.String())[1]
	t.Cleanup(func() {
		os.RemoveAll(root)
		os.Remove(filepath.Dir(root)) // only if no other server's root is in it
	})
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("data dir %s (parent mode 0700), sandbox root %s (mode %#o)", s.dataDir, root, fi.Mode().Perm())
	if !strings.HasPrefix(root, "/var/lib/libra-deploy/sandbox-") || fi.Mode().Perm() != 0o711 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("sandbox root %s mode %v: want a root-owned 0711 directory in /var/lib/libra-deploy", root, fi.Mode())
	}

	// Another data directory gets another root and cgroup: two serve
	// processes on one host never share sandbox state.
	other := startServer(t, "SANDBOX_ROOT=", "SANDBOX_CGROUP=")
	other.waitLog(regexp.MustCompile(`"sandbox_root":"[^"]+"`), 10*time.Second)
	otherRoot := regexp.MustCompile(`"sandbox_root":"([^"]+)"`).FindStringSubmatch(other.logs.String())[1]
	t.Cleanup(func() { os.RemoveAll(otherRoot) })
	cgroups := []string{defaultCgroupOf(t, s), defaultCgroupOf(t, other)}
	t.Logf("sandbox roots %s and %s, cgroup parents %v", root, otherRoot, cgroups)
	if otherRoot == root || cgroups[0] == cgroups[1] {
		t.Fatalf("two data directories share a sandbox root (%s, %s) or cgroup parent %v", root, otherRoot, cgroups)
	}
}

// defaultCgroupOf reads the cgroup parent the server chose from its log,
// and hands it to the helper's clean-up.
func defaultCgroupOf(t *testing.T, s *server) string {
	t.Helper()
	re := regexp.MustCompile(`"cgroup_parent":"(libra-sandbox-[0-9a-f]{12})"`)
	s.waitLog(re, 10*time.Second)
	s.cgroup = re.FindStringSubmatch(s.logs.String())[1]
	if len(cgroupDirs(s.cgroup)) == 0 {
		t.Fatalf("cgroup parent %s not found", s.cgroup)
	}
	return s.cgroup
}

// TestServeRemovesItsCgroups: a server that stops gracefully removes its
// cgroup parent; after a kill, the test helper's clean-up does.
func TestServeRemovesItsCgroups(t *testing.T) {
	cases := []struct {
		name string
		stop func(s *server)
	}{
		{"graceful stop", func(s *server) {
			if err := s.stop(30 * time.Second); err != nil {
				t.Errorf("stop: %v", err)
			}
		}},
		{"killed, then cleaned up", func(s *server) {
			s.kill()
			if err := removeCgroups(s.cgroup); err != nil {
				t.Error(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			// /health runs the sandbox check, which creates a build cgroup.
			if r := s.do("GET", "/health", nil); r.status != 200 {
				t.Fatalf("health: %d %s", r.status, r.body)
			}
			running := cgroupDirs(s.cgroup)
			if len(running) == 0 {
				t.Fatalf("no cgroup %s while the server runs", s.cgroup)
			}
			tc.stop(s)
			left := cgroupDirs(s.cgroup)
			t.Logf("cgroup dirs: %d while running, %d after stop %v", len(running), len(left), left)
			if len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}
