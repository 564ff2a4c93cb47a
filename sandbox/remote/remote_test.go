package remote

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

type entry struct {
	name string
	typ  byte
	body string
	link string
}

func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			_, _ = tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// What a hostile build puts in its archive must not reach outside the
// project, nor bring links or special files to this host.
func TestUnpackRefusesWhatMustNotLand(t *testing.T) {
	dir := t.TempDir()
	data := archive(t,
		entry{name: "./dist/index.html", typ: tar.TypeReg, body: "ok"},
		entry{name: "../escape.txt", typ: tar.TypeReg, body: "x"},
		entry{name: "dist/link", typ: tar.TypeSymlink, link: "/etc/passwd"},
		entry{name: "dist/fifo", typ: tar.TypeFifo},
		entry{name: "node_modules/a/index.js", typ: tar.TypeReg, body: "dep"},
	)
	err := Unpack(bytes.NewReader(data), dir, 1<<20)
	if err == nil {
		t.Fatal("an entry escaping the project was accepted")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("escape.txt written outside: %v", err)
	}
	clean := t.TempDir()
	data = archive(t,
		entry{name: "./dist/index.html", typ: tar.TypeReg, body: "ok"},
		entry{name: "dist/link", typ: tar.TypeSymlink, link: "/etc/passwd"},
		entry{name: "dist/fifo", typ: tar.TypeFifo},
		entry{name: "node_modules/a/index.js", typ: tar.TypeReg, body: "dep"},
	)
	if err := Unpack(bytes.NewReader(data), clean, 1<<20); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(clean, "dist", "index.html")); err != nil || string(b) != "ok" {
		t.Fatalf("index.html: %q %v", b, err)
	}
	for _, p := range []string{"dist/link", "dist/fifo", "node_modules"} {
		if _, err := os.Lstat(filepath.Join(clean, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was extracted", p)
		}
	}
}

func TestUnpackCapsSize(t *testing.T) {
	data := archive(t, entry{name: "big", typ: tar.TypeReg, body: string(make([]byte, 2048))})
	if err := Unpack(bytes.NewReader(data), t.TempDir(), 1024); !errors.Is(err, ErrArchiveTooLarge) {
		t.Fatalf("err %v, want ErrArchiveTooLarge", err)
	}
}

func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	_ = os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	_ = os.WriteFile(filepath.Join(src, "a", "b", "f.txt"), []byte("hello"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh"), 0o755)
	_ = os.Symlink("/etc/passwd", filepath.Join(src, "link"))
	data, err := Pack(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Unpack(bytes.NewReader(data), dst, 1<<20); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a", "b", "f.txt")); string(b) != "hello" {
		t.Fatalf("f.txt = %q", b)
	}
	if fi, err := os.Stat(filepath.Join(dst, "run.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("run.sh lost its exec bit: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "link")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a link travelled")
	}
}

// The script is run by a real bash: hostile arguments and values stay words.
func TestScriptQuotesEverything(t *testing.T) {
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ProjectDir), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := Script(libra.Command{
		Args: []string{"printf", "%s|%s|%s", "a'b", "$(touch pwned)", "$V"},
		Env:  map[string]string{"V": "x; touch pwned2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = home
	out, err := cmd.Output()
	if err != nil || string(out) != "a'b|$(touch pwned)|$V" {
		t.Fatalf("output %q err %v (script %s)", out, err, script)
	}
	for _, f := range []string{"pwned", "pwned2"} {
		if _, err := os.Stat(filepath.Join(home, ProjectDir, f)); err == nil {
			t.Fatalf("%s: the shell read an argument", f)
		}
	}
	for _, bad := range []libra.Command{{}, {Args: []string{"a\x00b"}}, {Args: []string{"x"}, Env: map[string]string{"A-B": "1"}}} {
		if _, err := Script(bad); err == nil {
			t.Errorf("Script(%q) accepted", bad.Args)
		}
	}
}

func TestUnpackCapsEntries(t *testing.T) {
	defer func(n int) { maxEntries = n }(maxEntries)
	maxEntries = 3
	var many []entry
	for i := range 5 {
		many = append(many, entry{name: string(rune('a'+i)) + ".txt", typ: tar.TypeReg})
	}
	if err := Unpack(bytes.NewReader(archive(t, many...)), t.TempDir(), 1<<20); !errors.Is(err, ErrArchiveTooLarge) {
		t.Fatalf("err %v, want ErrArchiveTooLarge", err)
	}
	if err := Unpack(bytes.NewReader(archive(t, many[:3]...)), t.TempDir(), 1<<20); err != nil {
		t.Fatalf("three entries: %v", err)
	}
}
