package workflow

import (
	"context"
	"fmt"
	"io"
	"testing"

	"strings"

	libra "github.com/libra-deploy/libra-deploy"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
)

func TestPlanStaticTree(t *testing.T) {
	create := func(p string) libra.FileOp { return libra.FileOp{Path: p, Type: libra.OpCreate, Content: []byte(p)} }
	for _, tc := range []struct {
		name   string
		ops    []libra.FileOp
		static bool
	}{
		{"plain static site", []libra.FileOp{create("index.html"), create("assets/a.css"), create("404.html")}, true},
		{"a later write of a path counts once", []libra.FileOp{create("index.html"), {Path: "index.html", Type: libra.OpEdit, Content: []byte("v2")}}, true},
		{"package.json may plan a build", []libra.FileOp{create("index.html"), create("package.json")}, false},
		{"a nested package.json plans nothing", []libra.FileOp{create("index.html"), create("docs/package.json")}, true},
		{"wrangler config may name an output", []libra.FileOp{create("index.html"), create("wrangler.toml")}, false},
		{"a delete leaves it to the file system", []libra.FileOp{create("a/b.html"), {Path: "a/b.html", Type: libra.OpDelete}}, false},
		{"a file that is another's directory", []libra.FileOp{create("a"), create("a/b/c.html")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := planStaticTree(tc.ops); got != tc.static {
				t.Fatalf("static %v, want %v", got, tc.static)
			}
		})
	}
}

// each hands every file in path order with its content, opening a blob only
// when read.
func TestStaticTreeEach(t *testing.T) {
	disk, err := artifactfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &countingOpens{ArtifactStore: disk}
	d1, _, err := disk.Put(context.Background(), strings.NewReader("blob one"))
	if err != nil {
		t.Fatal(err)
	}
	d2, _, err := disk.Put(context.Background(), strings.NewReader("blob two"))
	if err != nil {
		t.Fatal(err)
	}
	ops := []libra.FileOp{
		{Path: "b/x.css", Type: libra.OpCreate, Digest: d1, Size: 8},
		{Path: "a.html", Type: libra.OpCreate, Content: []byte("inline")},
		{Path: "c.bin", Type: libra.OpCreate, Digest: d2, Size: 8},
	}
	tree, ok := planStaticTree(ops)
	if !ok {
		t.Fatal("not static")
	}
	var got []string
	err = tree.each(context.Background(), store, func(p string, size int64, r io.Reader) error {
		if p == "c.bin" {
			got = append(got, fmt.Sprintf("%s %d unread", p, size))
			return nil
		}
		data, err := io.ReadAll(r)
		got = append(got, fmt.Sprintf("%s %d %s", p, size, data))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[a.html 6 inline b/x.css 8 blob one c.bin 8 unread]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	if store.opened != 1 {
		t.Fatalf("%d blobs opened, want 1 (the unread one stays closed)", store.opened)
	}
}

// countingOpens counts the blobs opened in a real store.
type countingOpens struct {
	libra.ArtifactStore
	opened int
}

func (c *countingOpens) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	c.opened++
	return c.ArtifactStore.Open(ctx, digest)
}
