package storetest

import (
	"errors"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// testBuildReuse: BuiltOutput finds the newest completed deployment of the
// same project with the same key, and nothing else: not a failed or
// unpublished one, not the asking deployment itself, not another project's
// (another org's) with the same key.
func testBuildReuse(t *testing.T, s libra.Store) {
	mustProject(t, s, "p", "o")
	mustProject(t, s, "q", "o2")
	keyed := func(project, org, key string) *libra.Deployment {
		d := mustDeploy(t, s, project, org)
		if err := s.SetBuildKey(ctx, d.ID, key); err != nil {
			t.Fatalf("set build key: %v", err)
		}
		return d
	}
	want := func(key, exclude, wantID string) {
		t.Helper()
		id, manifest, err := s.BuiltOutput(ctx, "p", key, exclude)
		if wantID == "" {
			if !errors.Is(err, libra.ErrNotFound) {
				t.Fatalf("BuiltOutput(%s) = %q, %q, %v; want ErrNotFound", key, id, manifest, err)
			}
			return
		}
		if err != nil || id != wantID || manifest != "sha256:m-"+wantID {
			t.Fatalf("BuiltOutput(%s) = %q, %q, %v; want %s and its manifest", key, id, manifest, err, wantID)
		}
	}
	want("k1", "", "")

	older := keyed("p", "o", "k1")
	complete(t, s, older)
	newer := keyed("p", "o", "k1")
	complete(t, s, newer)
	failed := keyed("p", "o", "k1")
	finish(t, s, failed, libra.StatusFailed)
	running := keyed("p", "o", "k1")
	other := keyed("q", "o2", "k2")
	complete(t, s, other)
	otherKey := keyed("p", "o", "k3")
	complete(t, s, otherKey)

	want("k1", running.ID, newer.ID)
	want("k1", newer.ID, older.ID)
	want("k2", "", "") // another project's key
	want("", "", "")   // a deployment without a build never matches
	want("k3", "", otherKey.ID)

	// A deleted deployment's output is not offered.
	if err := s.DeleteDeployment(ctx, newer.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	want("k1", running.ID, older.ID)
}
