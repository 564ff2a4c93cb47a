package bwrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

func TestCreateDestroyLifecycle(t *testing.T) {
	needSandbox(t)
	ctx := context.Background()
	work := newWorkDir(t)
	if err := os.WriteFile(filepath.Join(work, "index.html"), []byte("<p>hi</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	sbI, err := shared.Create(ctx, libra.SandboxOptions{DeploymentID: "life", OrgID: "org-life", WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	sb := sbI.(*sandbox)

	// While it lives, the project belongs to the build uid.
	if st := mustStat(t, filepath.Join(work, "index.html")); int(st.Uid) != sb.uid {
		t.Fatalf("project file owned by %d, want build uid %d", st.Uid, sb.uid)
	}
	mustOK(t, sh(t, sb, "mkdir -p out && echo built > out/x && chmod 000 out"), "build")
	if procs, err := sb.cg.procs(); err != nil || len(procs) != 0 {
		t.Fatalf("processes outlived their command: %v %v", procs, err)
	}

	if err := sb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	// Everything is the service's again, the sandbox's own state is gone.
	for _, p := range []string{work, filepath.Join(work, "index.html"), filepath.Join(work, "out"), filepath.Join(work, "out", "x")} {
		if st := mustStat(t, p); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s owned by %d:%d after Destroy", p, st.Uid, st.Gid)
		}
	}
	if _, err := os.Stat(sb.box); !os.IsNotExist(err) {
		t.Errorf("sandbox directory left: %v", err)
	}
	for _, dir := range cgroupDirs(sb.cg) {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left: %v", dir, err)
		}
	}
	// Idempotent, and the sandbox refuses work afterwards.
	if err := sb.Destroy(ctx); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if _, err := sb.Run(ctx, libra.Command{Args: []string{"true"}}); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("Run after Destroy: %v", err)
	}
	if err := os.RemoveAll(work); err != nil {
		t.Fatal(err)
	}
}

func TestDestroyStopsRunningCommand(t *testing.T) {
	needSandbox(t)
	sb, _ := newSandbox(t, shared, "org-destroy-running")
	done := make(chan result, 1)
	go func() { done <- sh(t, sb, "sleep 100") }()
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if err := sb.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if took := time.Since(t0); took > 5*time.Second {
		t.Fatalf("Destroy waited %s for the command", took)
	}
	if r.code == 0 {
		t.Fatalf("killed command reported success: %+v", r)
	}
}

// cgroupDirs lists the directories behind a cgroup.
func cgroupDirs(g cgroup) []string {
	switch g := g.(type) {
	case *cgroupV1Group:
		var out []string
		for _, d := range g.dirs {
			out = append(out, d)
		}
		return out
	case *cgroupV2Group:
		return []string{g.dir}
	}
	return nil
}

func TestUIDPool(t *testing.T) {
	needSandbox(t)
	var boxes []libra.Sandbox
	uids := map[int]bool{}
	for range shared.cfg.UIDCount {
		sb, _ := newSandbox(t, shared, "org-pool")
		boxes = append(boxes, sb)
		uids[sb.(*sandbox).uid] = true
	}
	if len(uids) != shared.cfg.UIDCount {
		t.Fatalf("uids %v not distinct", uids)
	}
	// Pool empty: Create waits, and gives up with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := shared.Create(ctx, libra.SandboxOptions{WorkDir: newWorkDir(t)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create with no free uid: %v", err)
	}
	// Check does not steal a uid from builds; it passes because they run.
	shared.mu.Lock()
	shared.checkedAt = time.Time{}
	shared.mu.Unlock()
	if err := shared.Check(context.Background()); err != nil {
		t.Fatalf("Check with all uids busy: %v", err)
	}
	// A destroyed sandbox frees its uid for the next Create.
	if err := boxes[0].Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	sb, _ := newSandbox(t, shared, "org-pool")
	if !uids[sb.(*sandbox).uid] {
		t.Fatalf("uid %d not from the pool", sb.(*sandbox).uid)
	}
}

func TestCheck(t *testing.T) {
	needSandbox(t)
	shared.mu.Lock()
	shared.checkedAt = time.Time{}
	shared.mu.Unlock()
	if err := shared.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if shared.Name() != "local" {
		t.Fatalf("Name = %q", shared.Name())
	}
	t.Logf("cgroup %s", shared.CgroupVersion())

	// Misconfigurations are reported clearly by New.
	cases := []struct {
		name    string
		mod     func(*Config)
		wantErr string // "" = New must succeed
	}{
		{"valid", func(*Config) {}, ""},
		{"no bwrap", func(c *Config) { c.BwrapPath = "/nonexistent/bwrap" }, "bubblewrap not found"},
		{"state dir not searchable", func(c *Config) { c.StateDir = filepath.Join(privateDir(t), "state") }, "not searchable"},
		{"bad uid range", func(c *Config) { c.UIDBase = 10 }, "uid range"},
		{"bad cgroup parent", func(c *Config) { c.CgroupParent = "../escape" }, "cgroup parent"},
		{"bad allow-list", func(c *Config) { c.ProxyAllowedHosts = []string{"*"} }, "bad allowed host"},
		{"memory limit too small", func(c *Config) { c.MemoryLimit = 1 << 20 }, "memory limit"},
		// Another live provider's cgroup parent or uids are never shared,
		// and refusing them must leave that provider's cgroups alone.
		{"cgroup parent of a live provider", func(c *Config) { c.CgroupParent = shared.cfg.CgroupParent }, "in use by another live instance"},
		{"uid of a live provider", func(c *Config) { c.UIDBase = shared.cfg.UIDBase + 1 }, "held by a live process"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(sharedRoot, "other", 50)
			tc.mod(&cfg)
			p, err := New(context.Background(), cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr == "":
				if err := p.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New: %v, want an error about %q", err, tc.wantErr)
			}
		})
	}

	shared.mu.Lock()
	shared.checkedAt = time.Time{}
	shared.mu.Unlock()
	if err := shared.Check(context.Background()); err != nil {
		t.Fatalf("Check after refused providers: %v", err)
	}

	// A work dir the build uid cannot reach is refused at Create, not at the
	// first Run.
	hidden := filepath.Join(privateDir(t), "work")
	if err := os.Mkdir(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := shared.Create(context.Background(), libra.SandboxOptions{WorkDir: hidden}); err == nil {
		t.Fatal("Create accepted a work dir below a 0700 directory")
	}
}

// privateDir is a directory only root can traverse.
func privateDir(t *testing.T) string {
	d := filepath.Join(sharedRoot, "private-"+t.Name())
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}
