package buildfile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree builds what a hostile build could leave behind.
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "ok.json"), []byte(`{"a":1}`), 0o644))
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("SECRET"), 0o600))
	must(unix.Mkfifo(filepath.Join(dir, "fifo.json"), 0o644))
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "link.json")))
	must(os.Symlink("ok.json", filepath.Join(dir, "inside-link.json")))
	must(os.Symlink(outside, filepath.Join(dir, "linkdir")))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "deep.txt"), []byte("deep"), 0o644))
	must(os.Truncate(filepath.Join(dir, "sub", "deep.txt"), 4))
	big, err := os.Create(filepath.Join(dir, "huge.bin"))
	must(err)
	must(big.Truncate(8 << 30)) // sparse: 8 GiB that take no disk
	big.Close()
	must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	return dir
}

func TestReadFile(t *testing.T) {
	dir := tree(t)
	cases := []struct {
		rel     string
		want    string
		wantErr error
	}{
		{"ok.json", `{"a":1}`, nil},
		{"sub/deep.txt", "deep", nil},
		{"fifo.json", "", ErrNotRegular},
		{"link.json", "", ErrNotRegular},
		{"inside-link.json", "", ErrNotRegular},
		{"linkdir/secret", "", ErrNotRegular},
		{"null", "", ErrNotRegular},
		{"sub", "", ErrNotRegular},
		{"huge.bin", "", ErrTooLarge},
		{"missing.json", "", fs.ErrNotExist},
		{"sub/missing/x", "", fs.ErrNotExist},
		{"ok.json/x", "", ErrNotRegular},
	}
	for _, c := range cases {
		t.Run(c.rel, func(t *testing.T) {
			start := time.Now()
			got, err := ReadFile(context.Background(), dir, c.rel, 1<<20)
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("took %s", took)
			}
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v (got %q)", err, c.wantErr, got)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestReadFileRefusesPathsOutside(t *testing.T) {
	dir := tree(t)
	for _, rel := range []string{"../x", "/etc/passwd", ".", ""} {
		if _, err := ReadFile(context.Background(), dir, rel, -1); err == nil {
			t.Errorf("%q: read, want an error", rel)
		}
	}
}

func TestReadHonoursContext(t *testing.T) {
	dir := tree(t)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Open(ctx, dir, "ok.json", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cancel()
	if _, err := f.Read(make([]byte, 8)); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
	if _, err := Open(ctx, dir, "ok.json", -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("open after cancel: %v", err)
	}
}

func TestIsRegularAndOpenDir(t *testing.T) {
	dir := tree(t)
	for rel, want := range map[string]bool{
		"ok.json": true, "sub/deep.txt": true, "fifo.json": false, "link.json": false,
		"linkdir/secret": false, "missing": false, "sub": false, "ok.json/x": false,
	} {
		got, err := IsRegular(dir, rel)
		if err != nil || got != want {
			t.Errorf("IsRegular(%q) = %v, %v; want %v", rel, got, err, want)
		}
	}
	if d, err := OpenDir(dir, "sub"); err != nil {
		t.Errorf("OpenDir(sub): %v", err)
	} else {
		d.Close()
	}
	if _, err := OpenDir(dir, "linkdir"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("OpenDir(linkdir) = %v, want a refusal", err)
	}
}
