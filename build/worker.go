package build

import (
	"path"
	"regexp"
)

// WorkerConfig is what a Cloudflare deploy needs from the project's
// wrangler config beyond its assets directory.
type WorkerConfig struct {
	// File is the config file it came from.
	File string
	// Main is the Worker's entry ("src/worker.ts"), a clean path relative
	// to the project; "" for a Worker that only serves assets.
	Main               string
	CompatibilityDate  string
	CompatibilityFlags []string
	// HTMLHandling is assets.html_handling, "" when unset.
	HTMLHandling string
}

var compatDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

var htmlHandlings = map[string]bool{"auto-trailing-slash": true, "force-trailing-slash": true, "drop-trailing-slash": true, "none": true}

// ReadWorker reads the Worker settings of the project in dir; nil when it
// has no wrangler config. Wrong values are the project's error, named
// with the key, so that a deploy never sends Cloudflare what it rejects.
func ReadWorker(dir string) (*WorkerConfig, error) {
	found, doc, _, err := loadWrangler(dir)
	if err != nil || found == "" {
		return nil, err
	}
	w := &WorkerConfig{File: found}
	if w.Main, err = workerMain(found, doc["main"]); err != nil {
		return nil, err
	}
	if w.CompatibilityDate, err = optionalString(found, "compatibility_date", doc["compatibility_date"]); err != nil {
		return nil, err
	}
	if w.CompatibilityDate != "" && !compatDate.MatchString(w.CompatibilityDate) {
		return nil, projectError("%s: compatibility_date %q must be a date like 2025-01-31", found, w.CompatibilityDate)
	}
	if w.CompatibilityFlags, err = stringList(found, "compatibility_flags", doc["compatibility_flags"]); err != nil {
		return nil, err
	}
	assets, _ := doc["assets"].(map[string]any)
	if w.HTMLHandling, err = optionalString(found, "assets.html_handling", assets["html_handling"]); err != nil {
		return nil, err
	}
	if w.HTMLHandling != "" && !htmlHandlings[w.HTMLHandling] {
		return nil, projectError("%s: assets.html_handling %q is not one of auto-trailing-slash, force-trailing-slash, drop-trailing-slash, none", found, w.HTMLHandling)
	}
	return w, nil
}

func workerMain(file string, v any) (string, error) {
	s, err := optionalString(file, "main", v)
	if err != nil || s == "" {
		return "", err
	}
	clean, err := cleanRelDir(s)
	if err != nil {
		return "", projectError("%s: main %q %v", file, s, err)
	}
	return path.Clean(clean), nil
}

func optionalString(file, key string, v any) (string, error) {
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", projectError("%s: %s must be a string", file, key)
	}
	return s, nil
}

func stringList(file, key string, v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, projectError("%s: %s must be a list of strings", file, key)
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, projectError("%s: %s must be a list of strings", file, key)
		}
		out = append(out, s)
	}
	return out, nil
}
