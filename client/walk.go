package client

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	ignore "github.com/sabhiram/go-gitignore"
	"golang.org/x/sync/errgroup"
)

// IgnoreFile names, in the deployed folder's root, what not to deploy, in
// .gitignore syntax.
const IgnoreFile = ".libraignore"

// LocalFile is a file of the folder to deploy.
type LocalFile struct {
	Path   string // relative, with '/' separators
	Abs    string
	Size   int64
	SHA256 string // hex; set by Hash
}

// Walk lists the regular files under dir that are deployed: not in .git/
// or node_modules/, not .env or .env.*, not named by .libraignore (nor
// that file itself). Symbolic links are skipped: they could point outside
// the folder. Files come in lexical order.
func Walk(dir string) ([]LocalFile, error) {
	rules, err := loadIgnore(dir)
	if err != nil {
		return nil, err
	}
	var out []LocalFile
	err = filepath.WalkDir(dir, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, abs)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skipped(rel, d.IsDir(), rules) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, LocalFile{Path: rel, Abs: abs, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	return out, nil
}

func loadIgnore(dir string) (*ignore.GitIgnore, error) {
	rules, err := ignore.CompileIgnoreFile(filepath.Join(dir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
	}
	return rules, nil
}

// skipped applies the fixed rules and then .libraignore's to one path.
func skipped(rel string, isDir bool, rules *ignore.GitIgnore) bool {
	name := rel[strings.LastIndexByte(rel, '/')+1:]
	switch {
	case isDir && (name == ".git" || name == "node_modules"):
		return true
	case !isDir && (name == ".env" || strings.HasPrefix(name, ".env.")):
		return true
	case rel == IgnoreFile:
		return true
	case rules == nil:
		return false
	case isDir:
		// A pattern ending in '/' matches directories only; the library
		// tells them apart by the trailing slash.
		return rules.MatchesPath(rel + "/")
	}
	return rules.MatchesPath(rel)
}

// Hash fills in every file's SHA256, reading files in parallel.
func Hash(files []LocalFile) error {
	var g errgroup.Group
	g.SetLimit(2 * runtime.NumCPU())
	for i := range files {
		g.Go(func() error { return hashFile(&files[i]) })
	}
	return g.Wait()
}

func hashFile(f *LocalFile) error {
	r, err := os.Open(f.Abs)
	if err != nil {
		return fmt.Errorf("hash %s: %w", f.Path, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("hash %s: %w", f.Path, err)
	}
	// The size read is the one uploaded and declared, even if the file
	// changed since it was listed.
	f.Size, f.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	return nil
}
