package storesql

import (
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema change, migrations/000N_what.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads migrations/*.sql from fsys, in order, and checks
// that they are numbered 1, 2, 3, ... without a gap: a store that keeps only
// the highest number applied (SQLite's user_version) would otherwise skip a
// missing file for good on every database that passed its number.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	out, err := LoadNumberedMigrations(fsys)
	if err != nil {
		return nil, err
	}
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: expected number %d", m.Name, i+1)
		}
	}
	return out, nil
}

// LoadNumberedMigrations is LoadMigrations for a store that records every
// version it applied (PostgreSQL's libra_migrations): there a gap is
// harmless, a file added later with a lower number is still applied, so
// migrations numbered apart on parallel branches work before and after they
// meet. A number used twice is still an error.
func LoadNumberedMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []Migration
	for _, name := range names {
		m, err := readMigration(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share a number", out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

func readMigration(fsys fs.FS, name string) (Migration, error) {
	base := strings.TrimPrefix(name, "migrations/")
	num, _, ok := strings.Cut(base, "_")
	v, err := strconv.Atoi(num)
	if !ok || err != nil || v < 1 {
		return Migration{}, fmt.Errorf("migration %s: name must start with a number and '_'", base)
	}
	body, err := fs.ReadFile(fsys, name)
	if err != nil {
		return Migration{}, fmt.Errorf("read migration %s: %w", base, err)
	}
	return Migration{Version: v, Name: base, SQL: string(body)}, nil
}
