// Package build decides how to build a project directory: whether it needs a
// build at all, which package manager and framework it uses, which commands to
// run, where the files to publish end up, whether the site is a single-page
// app, and which dependency cache fits it. It also keeps the per-org build
// cache on local disk and reads install and build logs for the name of a
// missing package.
//
// Nothing here runs a command. The build step runs Plan.InstallCommand and
// Plan.BuildCommand in a libra.Sandbox and judges them by their exit codes;
// this package only plans, so that the same plan works for every sandbox
// provider, local or remote.
//
// Errors caused by the project itself (broken package.json, an output
// directory that escapes the project, ...) are *libra.Error values marked
// libra.Permanent: retrying cannot fix them. Their messages name files
// relative to the project, never host paths.
package build
