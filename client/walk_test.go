package client

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		abs := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWalkSkips(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"fixed rules", map[string]string{
			"index.html": "x", ".git/HEAD": "x", "node_modules/a/b.js": "x", "src/node_modules/c.js": "x",
			".env": "S", ".env.local": "S", "sub/.env.production": "S", ".envrc": "x", "env.txt": "x",
		}, []string{".envrc", "env.txt", "index.html"}},
		{"libraignore patterns", map[string]string{
			".libraignore": "*.log\nbuild/\n/secret.txt\n!keep.log\ndocs/**/*.md\n",
			"a.log":        "x", "keep.log": "x", "sub/b.log": "x", "build/out.js": "x", "src/build/x.js": "x",
			"secret.txt": "x", "sub/secret.txt": "x", "docs/a/b.md": "x", "docs/a/b.txt": "x", "index.html": "x",
		}, []string{"docs/a/b.txt", "index.html", "keep.log", "sub/secret.txt"}},
		{"no ignore file", map[string]string{"a/b/c.txt": "x", "d.txt": "x"}, []string{"a/b/c.txt", "d.txt"}},
		{"comments and blank lines", map[string]string{".libraignore": "# a comment\n\n*.tmp\n", "x.tmp": "x", "y.txt": "x"},
			[]string{"y.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Walk(writeTree(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				got = append(got, f.Path)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("walked %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWalkSkipsSymlinksAndHashes(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.txt": "hello"})
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	files, err := Walk(dir)
	if err != nil || len(files) != 1 || files[0].Path != "a.txt" {
		t.Fatalf("walk: %+v, %v; want a.txt only", files, err)
	}
	if err := Hash(files); err != nil {
		t.Fatal(err)
	}
	const helloSHA = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if files[0].SHA256 != helloSHA || files[0].Size != 5 {
		t.Fatalf("hash: %+v", files[0])
	}
}
