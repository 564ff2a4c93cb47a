package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/libra-deploy/libra-deploy/client"
)

// oneID parses a command whose only positional argument is an id.
func oneID(name, usage string, args []string, extra func(fs flagSet)) (*clientFlags, string, error) {
	fs := newFlagSet(name, usage)
	f := addClientFlags(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, "", err
	}
	if len(pos) != 1 {
		return nil, "", usageError("usage: libra-deploy %s", usage)
	}
	return f, pos[0], nil
}

func runLogs(ctx context.Context, args []string, stdout io.Writer) error {
	followFlag := false
	f, id, err := oneID("logs", "logs ID [--follow] [--json]", args, func(fs flagSet) {
		fs.BoolVar(&followFlag, "follow", false, "keep showing new lines until the deployment ends")
	})
	if err != nil {
		return err
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	show := logPrinter(stdout, f.json)
	if followFlag {
		return clientFailure(followLogs(ctx, c, id, show))
	}
	st, err := c.Status(ctx, id)
	if err != nil {
		return clientFailure(err)
	}
	for _, e := range st.LogEntries {
		show(e)
	}
	return nil
}

// logPrinter prints log entries on stdout: as text, or one JSON object a
// line with --json.
func logPrinter(w io.Writer, asJSON bool) func(client.LogEntry) {
	enc := json.NewEncoder(w)
	return func(e client.LogEntry) {
		if asJSON {
			_ = enc.Encode(e)
			return
		}
		fmt.Fprintf(w, "%s [%s] %s\n", e.Timestamp.UTC().Format(time.TimeOnly), e.Step, e.Message)
	}
}

// followLogs prints a deployment's log lines as they come, from the event
// stream or, without one, by polling, until it ends.
func followLogs(ctx context.Context, c *client.Client, id string, show func(client.LogEntry)) error {
	err := c.Events(ctx, id, 0, func(ev client.Event) error {
		if ev.Type != "log" {
			return nil
		}
		var e client.LogEntry
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return fmt.Errorf("log event: %w", err)
		}
		show(e)
		return nil
	})
	if !errors.Is(err, client.ErrNoEvents) {
		return err
	}
	var seen []client.LogEntry
	wait := pollFirst
	for {
		st, err := c.Status(ctx, id)
		if err != nil {
			return err
		}
		for _, e := range newEntries(seen, st.LogEntries) {
			show(e)
		}
		seen = st.LogEntries
		if client.Final(st.Status) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = nextPoll(wait)
	}
}

func runList(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("ls", "ls --project ID [--json]")
	f := addClientFlags(fs)
	project := fs.String("project", "", "the project (required)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *project == "" || len(pos) != 0 {
		return usageError("usage: libra-deploy ls --project ID [--json]")
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	list, err := c.Deployments(ctx, *project)
	if err != nil {
		return clientFailure(err)
	}
	if f.json {
		return printJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPRODUCTION\tCREATED\tURL")
	for _, d := range list {
		prod := ""
		if d.Production {
			prod = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Status, prod, d.CreatedAt.UTC().Format(time.DateTime), d.URL)
	}
	return tw.Flush()
}

func runRollback(ctx context.Context, args []string, stdout io.Writer) error {
	var project string
	f, id, err := oneID("rollback", "rollback --project ID DEPLOYMENT [--json]", args, func(fs flagSet) {
		fs.StringVar(&project, "project", "", "the project (required)")
	})
	if err != nil {
		return err
	}
	if project == "" {
		return usageError("--project is required")
	}
	return postAction(ctx, f, stdout, "/projects/"+url.PathEscape(project)+"/rollback", map[string]string{"deploymentId": id})
}

func runPromote(ctx context.Context, args []string, stdout io.Writer) error {
	f, id, err := oneID("promote", "promote ID [--json]", args, nil)
	if err != nil {
		return err
	}
	return postAction(ctx, f, stdout, "/deployments/"+url.PathEscape(id)+"/promote", nil)
}

func runCancel(ctx context.Context, args []string, stdout io.Writer) error {
	f, id, err := oneID("cancel", "cancel ID [--json]", args, nil)
	if err != nil {
		return err
	}
	return postAction(ctx, f, stdout, "/deployments/"+url.PathEscape(id)+"/cancel", nil)
}

// postAction POSTs and prints the answer: as it is with --json, else its
// message.
func postAction(ctx context.Context, f *clientFlags, stdout io.Writer, path string, body any) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	if body == nil {
		body = struct{}{}
	}
	raw, err := c.Raw(ctx, http.MethodPost, path, body)
	if err != nil {
		return clientFailure(err)
	}
	if f.json {
		_, err := fmt.Fprintln(stdout, string(raw))
		return err
	}
	var ans struct {
		Message string `json:"message"`
		URL     string `json:"url"`
	}
	_ = json.Unmarshal(raw, &ans)
	fmt.Fprintln(stdout, ans.Message)
	if ans.URL != "" {
		fmt.Fprintln(stdout, ans.URL)
	}
	return nil
}
