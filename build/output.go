package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/libra-deploy/libra-deploy/internal/buildfile"
)

// decideSPA sets plan.SPA and the rule that decided it. In order: the
// wrangler config's explicit setting; a 404.html shipped by the project
// (its author wants real 404 pages); a client-side-routing framework's
// default; otherwise no fallback.
func decideSPA(dir string, plan *Plan, wrangler *wranglerConfig) error {
	if wrangler != nil && wrangler.NotFound != "" {
		switch wrangler.NotFound {
		case "single-page-application", "404-page", "none":
		default:
			plan.Warnings = append(plan.Warnings, fmt.Sprintf(`%s: assets.not_found_handling %q is not one of "single-page-application", "404-page" or "none": unknown paths get a 404`, wrangler.File, wrangler.NotFound))
		}
		plan.SPA = wrangler.NotFound == "single-page-application"
		plan.SPARule = SPARuleWrangler
		plan.SPAReason = fmt.Sprintf("%s sets assets.not_found_handling to %q", wrangler.File, wrangler.NotFound)
		return nil
	}
	// Vite and CRA copy public/ into the output; an unbuilt site is
	// published from OutputDir itself.
	page := "public/404.html"
	if !plan.NeedsBuild {
		page = path.Join(plan.OutputDir, "404.html")
	}
	ok, err := isRegular(dir, page)
	if err != nil {
		return err
	}
	switch {
	case ok:
		plan.SPA, plan.SPARule = false, SPARule404Page
		plan.SPAReason = page + " exists: unknown paths get it"
	case plan.NeedsBuild && frameworks[plan.Framework].spa:
		plan.SPA, plan.SPARule = true, SPARuleFramework
		plan.SPAReason = plan.Framework + " apps route in the browser and there is no " + page + ": unknown paths get index.html"
	default:
		plan.SPA, plan.SPARule = false, SPARuleNone
		plan.SPAReason = "nothing asks for single-page-app fallback: unknown paths get a 404"
	}
	return nil
}

// ResolveOutputDir is called after a successful build. It returns the
// directory to publish, relative to dir (the project), and records it in
// plan.OutputDir.
//
// A directory the project configured must exist as it was named. A
// framework's default may be overridden by the project's build config in
// ways Detect cannot read (a JavaScript config file is code), so when it is
// missing the first of dist/, build/ and out/ that the build wrote is taken,
// with a warning; likewise when Detect knew no default at all.
//
// The build ran untrusted code, so the directory is checked again here: it
// must be a real directory inside the project, reached through no symbolic
// link, and not empty. When the SPA default came from the framework and the
// built output turns out to contain a 404.html, SPA is switched off, as it
// would have been had Detect seen that page.
func ResolveOutputDir(dir string, plan *Plan) (string, error) {
	if plan.OutputDir != "" {
		clean, err := cleanRelDir(plan.OutputDir)
		if err != nil {
			return "", projectError("output directory %q %v", plan.OutputDir, err)
		}
		err = checkOutputDir(dir, clean)
		switch {
		case err == nil:
			return plan.setOutput(dir, clean, plan.OutputDirSource)
		case !errors.Is(err, fs.ErrNotExist):
			return "", err
		case !plan.NeedsBuild:
			return "", projectError("the output directory %s/ (from %s) does not exist", clean, plan.OutputDirSource)
		case plan.OutputDirConfigured:
			return "", projectError("the output directory %s/ (from %s) does not exist after the build", clean, plan.OutputDirSource)
		}
	}
	for _, cand := range fallbackOutputDirs {
		if cand == plan.OutputDir {
			continue
		}
		err := checkOutputDir(dir, cand)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if plan.OutputDir != "" {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("the build wrote no %s/ (%s); publishing %s/ instead", plan.OutputDir, plan.OutputDirSource, cand))
		}
		return plan.setOutput(dir, cand, "found after the build")
	}
	msg := "the build succeeded but wrote none of dist/, build/ or out/"
	if plan.OutputDir != "" {
		msg = fmt.Sprintf("the build succeeded but wrote no %s/ (%s), nor dist/, build/ or out/", plan.OutputDir, plan.OutputDirSource)
	}
	if hint := outputHint(plan); hint != "" {
		msg += ": " + hint
	} else {
		msg += `: set assets.directory in wrangler.jsonc to the folder your build writes`
	}
	return "", projectError("%s", msg)
}

// outputHint explains the usual reason a framework wrote nothing to publish.
func outputHint(plan *Plan) string {
	switch plan.Framework {
	case FrameworkNext:
		return "set output: 'export' in next.config.js so that next build writes a static site to out/"
	case FrameworkSvelteKit:
		return "use @sveltejs/adapter-static so that the build writes a static site to build/"
	case FrameworkNuxt:
		return "use `nuxt generate` as the build script so that a static site is written to .output/public"
	}
	return ""
}

func (plan *Plan) setOutput(dir, rel, source string) (string, error) {
	plan.OutputDir, plan.OutputDirSource = rel, source
	if plan.SPARule == SPARuleFramework {
		ok, err := isRegular(dir, path.Join(rel, "404.html"))
		if err != nil {
			return "", err
		}
		if ok {
			plan.SPA, plan.SPARule = false, SPARule404Page
			plan.SPAReason = "the build wrote " + path.Join(rel, "404.html") + ": unknown paths get it"
		}
	}
	return rel, nil
}

// checkOutputDir checks that rel (clean, relative) is a non-empty directory
// inside dir, reached without following any symbolic link: the deploy step
// reads what is there, and a link planted by the build could point it at
// the host. It returns an error wrapping fs.ErrNotExist when the directory
// is missing.
func checkOutputDir(dir, rel string) error {
	cur := dir
	if rel != "." {
		for _, part := range strings.Split(rel, "/") {
			cur = filepath.Join(cur, part)
			fi, err := os.Lstat(cur)
			if errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if err != nil {
				return err
			}
			if fi.Mode()&fs.ModeSymlink != 0 {
				return projectError("the output directory %s/ goes through a symbolic link (%s): it must be a real directory inside the project", rel, relTo(dir, cur))
			}
			if !fi.IsDir() {
				return projectError("the output directory %s/ is not a directory (%s is a file)", rel, relTo(dir, cur))
			}
		}
	}
	// Opened again without following links: the build's processes may
	// have swapped a component since the checks above.
	f, err := buildfile.OpenDir(dir, rel)
	if errors.Is(err, buildfile.ErrNotRegular) {
		return projectError("the output directory %s/ is not a real directory inside the project", rel)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); errors.Is(err, io.EOF) {
		return projectError("the output directory %s/ is empty: the build produced no files", rel)
	} else if err != nil {
		return err
	}
	return nil
}

func relTo(dir, p string) string {
	r, err := filepath.Rel(dir, p)
	if err != nil {
		return filepath.Base(p)
	}
	return filepath.ToSlash(r)
}
