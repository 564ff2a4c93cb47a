package build

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadWorker(t *testing.T) {
	for _, tc := range []struct {
		name, file, src string
		want            *WorkerConfig
		wantErr         string
	}{
		{name: "toml with main", file: "wrangler.toml", src: "main = \"./src/worker.ts\"\ncompatibility_date = \"2025-04-01\"\ncompatibility_flags = [\"nodejs_compat\"]\n[assets]\ndirectory = \"dist\"\nhtml_handling = \"drop-trailing-slash\"\n",
			want: &WorkerConfig{File: "wrangler.toml", Main: "src/worker.ts", CompatibilityDate: "2025-04-01", CompatibilityFlags: []string{"nodejs_compat"}, HTMLHandling: "drop-trailing-slash"}},
		{name: "jsonc assets only", file: "wrangler.jsonc", src: "{ // c\n \"assets\": {\"directory\": \"./public\"} }",
			want: &WorkerConfig{File: "wrangler.jsonc"}},
		{name: "main outside the project", file: "wrangler.json", src: `{"main": "../x.js"}`, wantErr: "points outside the project"},
		{name: "bad date", file: "wrangler.json", src: `{"compatibility_date": "yesterday"}`, wantErr: "compatibility_date"},
		{name: "bad flags", file: "wrangler.json", src: `{"compatibility_flags": "nodejs_compat"}`, wantErr: "list of strings"},
		{name: "bad html_handling", file: "wrangler.json", src: `{"assets": {"html_handling": "sometimes"}}`, wantErr: "html_handling"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadWorker(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if w, err := ReadWorker(t.TempDir()); w != nil || err != nil {
		t.Errorf("no config: %v %v", w, err)
	}
}
