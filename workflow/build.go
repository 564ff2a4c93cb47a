package workflow

import (
	"context"

	libra "github.com/libra-deploy/libra-deploy"
)

// build produces the directory to publish. A static site is published as it
// is; a project with a build script is installed and built in its sandbox.
func (ru *run) build(ctx context.Context) error {
	if !ru.needsBuild {
		ru.outDir = ru.workDir
		ru.logs.Add(libra.StepBuild, "info", "static site: publishing the files as they are")
		return nil
	}
	return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
		"builds are not supported yet: this project has a package.json build script; deploy its built output (e.g. dist/) as plain files instead"))
}
