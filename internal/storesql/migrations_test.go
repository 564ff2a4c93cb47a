package storesql

import (
	"testing"
	"testing/fstest"
)

// LoadMigrations (SQLite, user_version) refuses a gap; LoadNumberedMigrations
// (PostgreSQL, a row per version) accepts one; both refuse a number used
// twice and a file without a number.
func TestLoadMigrationsNumbering(t *testing.T) {
	files := func(names ...string) fstest.MapFS {
		fsys := fstest.MapFS{}
		for _, n := range names {
			fsys["migrations/"+n] = &fstest.MapFile{Data: []byte("SELECT 1;")}
		}
		return fsys
	}
	tests := []struct {
		name                string
		fsys                fstest.MapFS
		wantDense, wantNumd []int // nil: an error
	}{
		{"in order", files("0001_a.sql", "0002_b.sql"), []int{1, 2}, []int{1, 2}},
		{"a gap", files("0001_a.sql", "0004_d.sql"), nil, []int{1, 4}},
		{"a number twice", files("0001_a.sql", "0002_b.sql", "0002_c.sql"), nil, nil},
		{"no number", files("0001_a.sql", "base.sql"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dense, err := LoadMigrations(tt.fsys)
			checkVersions(t, "LoadMigrations", dense, err, tt.wantDense)
			numbered, err := LoadNumberedMigrations(tt.fsys)
			checkVersions(t, "LoadNumberedMigrations", numbered, err, tt.wantNumd)
		})
	}
}

func checkVersions(t *testing.T, fn string, got []Migration, err error, want []int) {
	t.Helper()
	if want == nil {
		if err == nil {
			t.Errorf("%s: %d migrations, want an error", fn, len(got))
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d migrations, want %d", fn, len(got), len(want))
	}
	for i, m := range got {
		if m.Version != want[i] {
			t.Errorf("%s: migration %d has version %d, want %d", fn, i, m.Version, want[i])
		}
	}
}
