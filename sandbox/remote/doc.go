// Package remote is what the remote build sandboxes (Daytona, E2B) share:
// the project travels to the provider as one tar.gz archive and comes back
// the same way after each command, so that the workflow's steps, which read
// the working directory on this host, run unchanged against a remote build.
//
// A provider supplies a Backend (upload a file, download a file, run a shell
// script with streamed output, delete the sandbox); Sandbox turns it into a
// libra.Sandbox.
package remote
