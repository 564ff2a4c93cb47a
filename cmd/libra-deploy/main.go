// Command libra-deploy is the whole service in one binary: `serve` runs the
// API, the queue workers and the site host; the other subcommands are admin
// tools that work beside a running `serve` on the same data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/libra-deploy/libra-deploy/sandbox/bwrap"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string, stdout io.Writer) error
}

func commands() []command {
	return append([]command{
		{"serve", "run the API, the queue workers and the site host", runServe},
		{"token", "API tokens: token create --org ORG --user USER [--expires 720h] | list --org ORG | revoke ID", runToken},
		{"project", "create a project: project create --org ORG --id ID [--name NAME]", runProject},
		{"quota", "set or show an org's monthly deployment quota: quota set|show --org ORG [--limit N]", runQuota},
		{"dlq", "list or re-queue dead-lettered deployments: dlq list | dlq retry ID", runDLQ},
		{"gc", "apply retention and remove unreferenced artifacts: gc [--dry-run] [--json] [--retention N] [--gc-grace D]", runGC},
		{"disk", "report disk use: artifacts stored, referenced, and per project: disk [--json]", runDisk},
		{"cluster", "run a local cluster (PostgreSQL, versitygw, N nodes): cluster [--nodes 3] [--base-port 3101] [--dir DIR]", runCluster},
		{"version", "print the version", func(_ context.Context, _ []string, w io.Writer) error {
			_, err := fmt.Fprintln(w, version)
			return err
		}},
	}, clientCommands()...)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "libra-deploy %s: a self-hosted deployment service\n\nUsage: libra-deploy COMMAND [flags]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
	fmt.Fprintf(w, "\nRun 'libra-deploy COMMAND --help' for a command's flags. Configuration comes from the\nenvironment (see README.md); flags override it.\n")
}

func main() {
	// Inside a build sandbox the binary is re-run as its helper (it starts
	// the build's process, sets its limits, relays the registry proxy):
	// that must happen before anything else.
	if len(os.Args) > 1 && os.Args[1] == bwrap.HelperCommand {
		os.Exit(bwrap.HelperMain(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], os.Stdout)
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "libra-deploy %s: %v\n", c.name, err)
				// Client commands give each kind of failure its own code (cli.go).
				var coded interface{ ExitCode() int }
				if errors.As(err, &coded) {
					return coded.ExitCode()
				}
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "libra-deploy: unknown command %q\n\n", args[0])
	usage(os.Stderr)
	return 2
}
