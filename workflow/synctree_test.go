package workflow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

// The tree sync writes in parallel must be the tree of applying the
// operations one by one, in order.
func TestTreeWriterAppliesOperationsInOrder(t *testing.T) {
	create := func(p, c string) libra.FileOp { return libra.FileOp{Path: p, Type: libra.OpCreate, Content: []byte(c)} }
	edit := func(p, c string) libra.FileOp { return libra.FileOp{Path: p, Type: libra.OpEdit, Content: []byte(c)} }
	del := func(p string) libra.FileOp { return libra.FileOp{Path: p, Type: libra.OpDelete} }
	many := []libra.FileOp{}
	want := map[string]string{}
	for i := range 300 {
		p := fmt.Sprintf("d%d/sub/f%d.txt", i%7, i)
		many = append(many, create(p, p))
		want[p] = p
	}
	for _, tc := range []struct {
		name string
		ops  []libra.FileOp
		want map[string]string
	}{
		{"many files in shared directories", many, want},
		{"the last write of a path wins", []libra.FileOp{create("a.txt", "1"), edit("a.txt", "2"), create("b/c.txt", "x"), edit("a.txt", "3")},
			map[string]string{"a.txt": "3", "b/c.txt": "x"}},
		{"a deleted directory is made again", []libra.FileOp{create("d/x", "1"), del("d/x"), del("d"), create("d/y", "2")},
			map[string]string{"d/y": "2"}},
		{"a directory deleted, then a file of its name", []libra.FileOp{create("d/x", "1"), del("d/x"), del("d"), create("d", "file")},
			map[string]string{"d": "file"}},
		{"a write after a delete of the same path", []libra.FileOp{create("a", "1"), del("a"), create("a", "2")},
			map[string]string{"a": "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			ru := &run{r: &Runner{}, d: &libra.Deployment{Input: tc.ops}}
			w := newTreeWriter(context.Background(), ru, root)
			_, err = ru.applyOps(w, tc.ops)
			if werr := w.wait(); err == nil {
				err = werr
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := readTree(t, dir); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("tree %v, want %v", got, tc.want)
			}
		})
	}
}

// A file where a directory is needed is refused as the input's fault,
// even with writes under way.
func TestTreeWriterRefusesAFileAsADirectory(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ops := []libra.FileOp{{Path: "a", Type: libra.OpCreate, Content: []byte("file")}, {Path: "b", Type: libra.OpCreate, Content: []byte("x")}}
	ru := &run{r: &Runner{}, d: &libra.Deployment{Input: ops}}
	w := newTreeWriter(context.Background(), ru, root)
	if _, err := ru.applyOps(w, ops); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(); err != nil {
		t.Fatal(err)
	}
	err = w.write(libra.FileOp{Path: "a/c", Type: libra.OpCreate, Content: []byte("y")})
	if !libra.IsPermanent(err) {
		t.Fatalf("writing under a file: %v, want a permanent refusal", err)
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
