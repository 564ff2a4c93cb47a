package build

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestInstallInputs(t *testing.T) {
	base := map[string]string{
		"package.json":      `{"name": "app", "scripts": {"build": "vite build"}, "dependencies": {"ms": "^2.1.3"}}`,
		"package-lock.json": `{"lockfileVersion": 3}`,
		"src/main.ts":       "console.log(1)",
	}
	with := func(changes map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range changes {
			out[k] = v
		}
		return out
	}
	digest := func(t *testing.T, files map[string]string) string {
		t.Helper()
		d, err := InstallInputs(context.Background(), project(t, files))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	want := digest(t, base)
	tests := []struct {
		name  string
		files map[string]string
		same  bool
	}{
		{"the same files", with(nil), true},
		{"a source file changed", with(map[string]string{"src/main.ts": "console.log(2)"}), true},
		{"a new source file", with(map[string]string{"src/other.ts": "x"}), true},
		{"package.json changed", with(map[string]string{"package.json": `{"name": "app2"}`}), false},
		{"the lockfile changed", with(map[string]string{"package-lock.json": `{"lockfileVersion": 2}`}), false},
		{"an .npmrc appeared", with(map[string]string{".npmrc": "legacy-peer-deps=true"}), false},
		{"another lockfile appeared", with(map[string]string{"bun.lock": "{}"}), false},
		{"a file's content moved to another name", map[string]string{
			"package.json": base["package.json"], "npm-shrinkwrap.json": base["package-lock.json"]}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := digest(t, tt.files); (got == want) != tt.same {
				t.Errorf("digest equal = %v, want %v", got == want, tt.same)
			}
		})
	}
}

func TestInstallInputsRefusesLinks(t *testing.T) {
	dir := project(t, map[string]string{"package.json": "{}"})
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, ".npmrc")); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallInputs(context.Background(), dir); err == nil {
		t.Error("a linked .npmrc was read")
	}
}

func TestPlanInstallScripts(t *testing.T) {
	tests := []struct {
		scripts string
		want    bool
	}{
		{`{"build": "vite build"}`, false},
		{`{"build": "vite build", "postinstall": "node gen.js"}`, true},
		{`{"build": "vite build", "prepare": "husky"}`, true},
		{`{"build": "vite build", "preinstall": "x"}`, true},
		{`{"build": "vite build", "test": "vitest"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.scripts, func(t *testing.T) {
			dir := project(t, map[string]string{"package.json": `{"name": "app", "scripts": ` + tt.scripts + `}`})
			plan, err := Detect(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if plan.InstallScripts != tt.want {
				t.Errorf("InstallScripts = %v, want %v", plan.InstallScripts, tt.want)
			}
		})
	}
}
