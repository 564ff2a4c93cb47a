package build

import "slices"

// PlanFiles are the project files, at its root, that can make Detect plan
// anything but a static site published as it is (with a root 404.html
// deciding unknown paths). Without any of them, Detect reads nothing
// beyond the project's root level, so a caller may hand it that level
// alone.
func PlanFiles() []string {
	return append([]string{"package.json"}, slices.Clone(wranglerFiles)...)
}
