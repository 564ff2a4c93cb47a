package bwrap

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadFiles(t *testing.T) {
	needSandbox(t)
	sb, work := newSandbox(t, shared, "org-files")
	// The build makes the tree, as it would: regular files next to every
	// kind of thing ReadFiles must not follow or open.
	mustOK(t, sh(t, sb, `set -e
mkdir -p dist/sub dist/empty
printf 'alpha' > dist/a.txt
printf 'beta!' > dist/sub/b.txt
ln -s /etc/passwd dist/passwd-link
ln -s a.txt dist/inner-link
ln -s /etc dist/etc-link
ln -s ../.. dist/sub/up-link
mkfifo dist/fifo
ln -s dist link-to-dist
`), "make tree")
	// A symlink the host made pointing at a host file, in case the sandbox
	// view differs.
	if err := os.Symlink("/etc/shadow", filepath.Join(work, "dist", "shadow-link")); err != nil {
		t.Fatal(err)
	}

	type file struct {
		path    string
		size    int64
		content string
	}
	read := func(dir string) ([]file, error) {
		var got []file
		err := sb.ReadFiles(context.Background(), dir, func(path string, size int64, r io.Reader) error {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			got = append(got, file{path, size, string(b)})
			return nil
		})
		return got, err
	}

	cases := []struct {
		dir     string
		want    []file
		wantErr bool
	}{
		{dir: "dist", want: []file{{"a.txt", 5, "alpha"}, {"sub/b.txt", 5, "beta!"}}},
		{dir: "dist/sub", want: []file{{"b.txt", 5, "beta!"}}},
		{dir: "dist/empty", want: nil},
		{dir: "../", wantErr: true},
		{dir: "dist/../..", wantErr: true},
		{dir: "/etc", wantErr: true},
		{dir: "link-to-dist", wantErr: true},
		{dir: "dist/etc-link", wantErr: true},
		{dir: "missing", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			got, err := read(tc.dir)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ReadFiles(%q) = %v, want an error", tc.dir, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ReadFiles(%q) = %+v, want %+v", tc.dir, got, tc.want)
			}
		})
	}

	// The root of the project works too and never includes link targets.
	got, err := read(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		if strings.Contains(f.content, "root:") {
			t.Fatalf("%s: content of a link target was read", f.path)
		}
	}

	// fn's error stops the walk and comes back wrapped.
	stop := errors.New("stop")
	err = sb.ReadFiles(context.Background(), "dist", func(string, int64, io.Reader) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the callback's error", err)
	}
	// A cancelled context stops it too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sb.ReadFiles(ctx, "dist", func(string, int64, io.Reader) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestChownTreeDoesNotFollowLinks(t *testing.T) {
	needSandbox(t)
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "a", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(victim), filepath.Join(dir, "a", "b", "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(dir, 4242, 4243); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "a"), filepath.Join(dir, "a", "b"), filepath.Join(dir, "a", "link"), filepath.Join(dir, "a", "b", "dirlink")} {
		if st := mustStat(t, p); st.Uid != 4242 || st.Gid != 4243 {
			t.Errorf("%s: %d:%d, want 4242:4243", p, st.Uid, st.Gid)
		}
	}
	if st := mustStat(t, victim); st.Uid != 0 {
		t.Fatalf("link target was chowned to %d", st.Uid)
	}
	// measureTree counts the tree, not what links point to.
	u, err := measureTree(dir)
	if err != nil || u.files != 5 {
		t.Fatalf("measureTree: %+v %v, want 5 entries", u, err)
	}
}
