package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/libra-deploy/libra-deploy/client"
)

// The client commands (deploy, logs, ls, rollback, promote, cancel) talk to
// a server's API, unlike the admin commands, which open the data directory.
// Their exit codes, as the README documents them:
const (
	exitFailed    = 1 // the deployment failed (or another command's request failed on the server's side)
	exitUsage     = 2 // bad flags or arguments
	exitCancelled = 3 // the deployment was cancelled
	exitClient    = 4 // the request could not be made or was refused: network, token, project, files
)

// exitError carries a command's exit code to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// clientError marks a failure to talk to the server, or its refusal.
func clientFailure(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitClient, err: err}
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	url, token string
	json       bool
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	f := &clientFlags{}
	url := os.Getenv("LIBRA_URL")
	if url == "" {
		url = client.DefaultURL
	}
	fs.StringVar(&f.url, "url", url, "the server's API (env LIBRA_URL)")
	fs.StringVar(&f.token, "token", os.Getenv("LIBRA_TOKEN"), "an API token (env LIBRA_TOKEN)")
	fs.BoolVar(&f.json, "json", false, "print the result as JSON")
	return f
}

func (f *clientFlags) client() (*client.Client, error) {
	if f.token == "" {
		return nil, &exitError{code: exitClient, err: errors.New("no token: set LIBRA_TOKEN (or pass --token) to a token from `libra-deploy token create`")}
	}
	return client.New(f.url, f.token), nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (`deploy ./dist --project web`), which flag alone
// stops at, and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{code: exitUsage, err: err}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: libra-deploy %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// clientCommands are the commands that talk to a server.
func clientCommands() []command {
	return []command{
		{"deploy", "deploy a folder: deploy [DIR] --project ID [--prod|--preview] [--alias NAME] [--json] [--no-wait] [--url URL] [--token T]", runDeploy},
		{"logs", "show a deployment's log: logs ID [--follow] [--json]", runLogs},
		{"ls", "list a project's deployments: ls --project ID [--json]", runList},
		{"rollback", "serve an earlier deployment in production: rollback --project ID DEPLOYMENT [--json]", runRollback},
		{"promote", "make a preview deployment production: promote ID [--json]", runPromote},
		{"cancel", "cancel a queued or running deployment: cancel ID [--json]", runCancel},
	}
}

// flagSet is what oneID's callers add their flags to.
type flagSet = *flag.FlagSet
