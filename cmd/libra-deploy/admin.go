package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/api"
)

// subcommand parses "VERB [flags]" for commands like `token create`.
func subcommand(args []string, verbs ...string) (string, []string, error) {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintf(os.Stdout, "Verbs: %s. Run with VERB --help for its flags.\n", strings.Join(verbs, ", "))
		return "", nil, flag.ErrHelp
	}
	if len(args) == 0 {
		return "", nil, fmt.Errorf("expected one of %v", verbs)
	}
	for _, v := range verbs {
		if args[0] == v {
			return v, args[1:], nil
		}
	}
	return "", nil, fmt.Errorf("unknown verb %q; expected one of %v", args[0], verbs)
}

func quietLogger() *slog.Logger { return newLogger("error") }

func runToken(ctx context.Context, args []string, stdout io.Writer) error {
	if _, rest, err := subcommand(args, "create"); err != nil {
		return err
	} else {
		args = rest
	}
	c := loadConfig()
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	org := fs.String("org", "", "org the token belongs to (required)")
	user := fs.String("user", "", "user the token belongs to (required)")
	admin := fs.Bool("admin", false, "the token also opens the admin routes (/metrics, /admin/queue/)")
	c.commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := libra.CheckID(*org); err != nil {
		return fmt.Errorf("--org %v", err)
	}
	if err := libra.CheckID(*user); err != nil {
		return fmt.Errorf("--user %v", err)
	}
	db, _, err := openState(ctx, c, nil, quietLogger())
	if err != nil {
		return err
	}
	defer db.Close()
	token, err := api.NewToken()
	if err != nil {
		return err
	}
	if err := db.CreateToken(ctx, libra.Token{Hash: api.HashToken(token), OrgID: *org, UserID: *user, CreatedAt: libra.Now(), Admin: *admin}); err != nil {
		return err
	}
	// The token alone on stdout, so scripts can capture it; it is shown
	// once and only its hash is kept.
	_, err = fmt.Fprintln(stdout, token)
	return err
}

func runProject(ctx context.Context, args []string, stdout io.Writer) error {
	if _, rest, err := subcommand(args, "create"); err != nil {
		return err
	} else {
		args = rest
	}
	c := loadConfig()
	fs := flag.NewFlagSet("project create", flag.ContinueOnError)
	org := fs.String("org", "", "org the project belongs to (required)")
	id := fs.String("id", "", "project id (required); lower-case ids double as the site's host name")
	name := fs.String("name", "", "display name (default: the id)")
	c.commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := libra.CheckID(*org); err != nil {
		return fmt.Errorf("--org %v", err)
	}
	if err := libra.CheckProjectID(*id); err != nil {
		return fmt.Errorf("--id %v", err)
	}
	if *name == "" {
		*name = *id
	}
	db, _, err := openState(ctx, c, nil, quietLogger())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CreateProject(ctx, libra.Project{ID: *id, OrgID: *org, Name: *name, CreatedAt: libra.Now()}); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "project %s created in org %s\n", *id, *org)
	return err
}

func runQuota(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand(args, "set", "show")
	if err != nil {
		return err
	}
	c := loadConfig()
	fs := flag.NewFlagSet("quota "+verb, flag.ContinueOnError)
	org := fs.String("org", "", "org (required)")
	limit := fs.Int("limit", -1, "deployments per calendar month (quota set; -1 removes the limit)")
	c.commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := libra.CheckID(*org); err != nil {
		return fmt.Errorf("--org %v", err)
	}
	db, _, err := openState(ctx, c, nil, quietLogger())
	if err != nil {
		return err
	}
	defer db.Close()
	if verb == "set" {
		if err := db.SetQuota(ctx, *org, *limit); err != nil {
			return err
		}
	}
	q, err := db.Quota(ctx, *org, libra.QuotaMonth(libra.Now()))
	if err != nil {
		return err
	}
	limitText := "unlimited"
	if q.Limit >= 0 {
		limitText = fmt.Sprint(q.Limit)
	}
	_, err = fmt.Fprintf(stdout, "org %s: %d used in %s, limit %s\n", q.OrgID, q.Used, q.Month, limitText)
	return err
}

func runDLQ(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand(args, "list", "retry")
	if err != nil {
		return err
	}
	c := loadConfig()
	fs := flag.NewFlagSet("dlq "+verb, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON (dlq list)")
	c.commonFlags(fs)
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	db, q, err := openState(ctx, c, nil, quietLogger())
	if err != nil {
		return err
	}
	defer db.Close()
	switch verb {
	case "list":
		dead, err := q.DeadLetters(ctx, 1000)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(dead)
		}
		fmt.Fprintf(stdout, "dead-letter queue %s: %d deployments\n", c.DLQName, len(dead))
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEPLOYMENT\tJOB\tATTEMPTS\tFAILED AT\tLAST ERROR")
		for _, d := range dead {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", d.DeploymentID, d.JobID, d.Attempts, d.FailedAt.Format(time.RFC3339), d.LastError)
		}
		return tw.Flush()
	default:
		if len(positional) != 1 {
			return errors.New("usage: dlq retry DEPLOYMENT_ID")
		}
		id := positional[0]
		if err := db.Requeue(ctx, id); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "deployment %s re-queued\n", id)
		return err
	}
}

// parseInterleaved parses flags that may come after positional arguments
// ("dlq retry ID --data-dir DIR"), which package flag alone does not allow.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
