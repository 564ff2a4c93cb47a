package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

func TestResolveOutputDir(t *testing.T) {
	tests := []struct {
		name string
		// files are the project before the build; built are what the build
		// wrote.
		files, built map[string]string
		links        map[string]string // link name → target, "OUTSIDE" for a directory outside the project

		want       string
		wantSPA    *bool
		wantWarn   string
		errContain []string
	}{
		{
			name:  "framework default",
			files: map[string]string{"package.json": reactPkg},
			built: map[string]string{"dist/index.html": "app", "dist/assets/a.js": "js"},
			want:  "dist",
		},
		{
			name:  "unknown framework: first of dist, build, out",
			files: map[string]string{"package.json": `{"scripts":{"build":"node build.js"}}`},
			built: map[string]string{"build/index.html": "x", "out/index.html": "y"},
			want:  "build",
		},
		{
			name:     "framework default missing: fall back with a warning",
			files:    map[string]string{"package.json": reactPkg},
			built:    map[string]string{"out/index.html": "x"},
			want:     "out",
			wantWarn: "the build wrote no dist/",
		},
		{
			name:  "configured directory",
			files: map[string]string{"package.json": reactPkg, "wrangler.jsonc": `{"assets":{"directory":"./www"}}`},
			built: map[string]string{"www/index.html": "x", "dist/index.html": "y"},
			want:  "www",
		},
		{
			name:       "configured directory missing is an error, never a fallback",
			files:      map[string]string{"package.json": reactPkg, "wrangler.jsonc": `{"assets":{"directory":"./www"}}`},
			built:      map[string]string{"dist/index.html": "y"},
			errContain: []string{"www/", "wrangler.jsonc assets.directory", "does not exist"},
		},
		{
			name:       "nothing written: the Next.js hint",
			files:      map[string]string{"package.json": `{"scripts":{"build":"next build"},"dependencies":{"next":"15.0.0"}}`},
			built:      map[string]string{".next/server/app.js": "x"},
			errContain: []string{"wrote no out/", "output: 'export'"},
		},
		{
			name:       "nothing written, unknown framework",
			files:      map[string]string{"package.json": `{"scripts":{"build":"echo done"}}`},
			errContain: []string{"none of dist/, build/ or out/", "assets.directory"},
		},
		{
			name:       "empty output directory",
			files:      map[string]string{"package.json": reactPkg},
			built:      map[string]string{"dist/": ""},
			errContain: []string{"dist/ is empty"},
		},
		{
			name:       "output directory that is a file",
			files:      map[string]string{"package.json": reactPkg},
			built:      map[string]string{"dist": "not a dir"},
			errContain: []string{"not a directory"},
		},
		{
			name:       "output directory planted as a symlink out of the project",
			files:      map[string]string{"package.json": reactPkg},
			links:      map[string]string{"dist": "OUTSIDE"},
			errContain: []string{"symbolic link"},
		},
		{
			name:       "a symlink on the way to the output directory",
			files:      map[string]string{"package.json": reactPkg, "wrangler.jsonc": `{"assets":{"directory":"site/public"}}`},
			links:      map[string]string{"site": "OUTSIDE"},
			errContain: []string{"symbolic link", "(site)"},
		},
		{
			name:    "built 404.html turns the framework's SPA default off",
			files:   map[string]string{"package.json": reactPkg},
			built:   map[string]string{"dist/index.html": "app", "dist/404.html": "gone"},
			want:    "dist",
			wantSPA: new(false),
		},
		{
			name:    "built 404.html does not override wrangler",
			files:   map[string]string{"package.json": reactPkg, "wrangler.jsonc": `{"assets":{"not_found_handling":"single-page-application"}}`},
			built:   map[string]string{"dist/index.html": "app", "dist/404.html": "gone"},
			want:    "dist",
			wantSPA: new(true),
		},
		{
			name:       "unbuilt site whose configured directory is missing",
			files:      map[string]string{"index.html": "hi", "wrangler.toml": "[assets]\ndirectory = \"public\"\n"},
			errContain: []string{"public/ (from wrangler.toml assets.directory) does not exist"},
		},
		{
			name:  "unbuilt static site",
			files: map[string]string{"index.html": "hi"},
			want:  ".",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := project(t, tt.files)
			plan, err := Detect(dir, Options{})
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			for name, content := range tt.built {
				if strings.HasSuffix(name, "/") {
					if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
						t.Fatal(err)
					}
					continue
				}
				writeTree(t, dir, map[string]string{name: content})
			}
			for name, target := range tt.links {
				if target == "OUTSIDE" {
					target = project(t, map[string]string{"index.html": "host", "public/index.html": "host"})
				}
				if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}

			got, err := ResolveOutputDir(dir, plan)
			if tt.errContain != nil {
				if err == nil {
					t.Fatalf("ResolveOutputDir = %q, want an error", got)
				}
				if !libra.IsPermanent(err) {
					t.Errorf("error not permanent: %v", err)
				}
				for _, c := range tt.errContain {
					if !strings.Contains(err.Error(), c) {
						t.Errorf("error %q does not contain %q", err, c)
					}
				}
				if strings.Contains(err.Error(), dir) {
					t.Errorf("error %q reveals the host path", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveOutputDir: %v", err)
			}
			if got != tt.want || plan.OutputDir != tt.want {
				t.Errorf("ResolveOutputDir = %q (plan.OutputDir %q), want %q", got, plan.OutputDir, tt.want)
			}
			if tt.wantSPA != nil && plan.SPA != *tt.wantSPA {
				t.Errorf("SPA = %v (%s), want %v", plan.SPA, plan.SPAReason, *tt.wantSPA)
			}
			if tt.wantWarn != "" && !strings.Contains(strings.Join(plan.Warnings, "\n"), tt.wantWarn) {
				t.Errorf("warnings %q lack %q", plan.Warnings, tt.wantWarn)
			}
		})
	}
}

func TestResolveOutputDirRechecksPlan(t *testing.T) {
	// A plan that travelled (a retried job, say) is not trusted blindly.
	dir := project(t, map[string]string{"index.html": "hi"})
	plan := &Plan{NeedsBuild: true, OutputDir: "../elsewhere", OutputDirConfigured: true}
	_, err := ResolveOutputDir(dir, plan)
	if err == nil || !libra.IsPermanent(err) || !strings.Contains(err.Error(), "outside the project") {
		t.Fatalf("ResolveOutputDir with an escaping plan: %v", err)
	}
}
