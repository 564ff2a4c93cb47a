package openapicheck

import (
	"os"
	"path/filepath"
)

// SpecsDir finds the providers' published specs: $LIBRA_SPECS_DIR, or
// ../shared/specs beside the repository root (where CI lays them). ok is
// false when they are absent; the caller skips its spec check, saying so.
func SpecsDir() (dir string, ok bool) {
	if d := os.Getenv("LIBRA_SPECS_DIR"); d != "" {
		return d, isDir(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			specs := filepath.Join(filepath.Dir(d), "shared", "specs")
			return specs, isDir(specs)
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

func isDir(d string) bool {
	fi, err := os.Stat(d)
	return err == nil && fi.IsDir()
}
