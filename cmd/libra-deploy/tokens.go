package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/api"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// runToken is `token create|list|revoke`.
func runToken(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand(args, "create", "list", "revoke")
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		return runTokenList(ctx, args, stdout)
	case "revoke":
		return runTokenRevoke(ctx, args, stdout)
	}
	return runTokenCreate(ctx, args, stdout)
}

func runTokenCreate(ctx context.Context, args []string, stdout io.Writer) error {
	c := loadConfig()
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	org := fs.String("org", "", "org the token belongs to (required)")
	user := fs.String("user", "", "user the token belongs to (required)")
	expires := fs.Duration("expires", 0, "lifetime, e.g. 720h; 0 for a token that does not expire")
	admin := fs.Bool("admin", false, "the token also opens the admin routes (/metrics, /admin/queue/)")
	c.commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := newTokenRecord(*org, *user, *expires)
	if err != nil {
		return err
	}
	token, err := api.NewToken()
	if err != nil {
		return err
	}
	t.Hash, t.Admin = api.HashToken(token), *admin
	db, _, err := openState(ctx, c, nil, quietLogger())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CreateToken(ctx, t); err != nil {
		return err
	}
	// The token alone on stdout, so scripts can capture it; it is shown
	// once and only its hash is kept; `token list` shows its id.
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// newTokenRecord checks create's flags and returns the token to store,
// without its hash.
func newTokenRecord(org, user string, expires time.Duration) (libra.Token, error) {
	if err := libra.CheckID(org); err != nil {
		return libra.Token{}, fmt.Errorf("--org %v", err)
	}
	if err := libra.CheckID(user); err != nil {
		return libra.Token{}, fmt.Errorf("--user %v", err)
	}
	if expires < 0 {
		return libra.Token{}, fmt.Errorf("--expires %v: must not be negative", expires)
	}
	id, err := storesql.NewTokenID()
	if err != nil {
		return libra.Token{}, err
	}
	t := libra.Token{OrgID: org, UserID: user, CreatedAt: libra.Now()}
	t.ID = id
	if expires > 0 {
		at := t.CreatedAt.Add(expires)
		t.ExpiresAt = &at
	}
	return t, nil
}

func runTokenList(ctx context.Context, args []string, stdout io.Writer) error {
	c := loadConfig()
	fs := flag.NewFlagSet("token list", flag.ContinueOnError)
	org := fs.String("org", "", "org whose tokens to list (required)")
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
	tokens, err := db.ListTokens(ctx, *org)
	if err != nil {
		return err
	}
	return printTokens(stdout, tokens)
}

// printTokens writes one line per token: never its secret or hash.
func printTokens(w io.Writer, tokens []libra.Token) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tCREATED\tLAST USED\tEXPIRES")
	for _, t := range tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.UserID, t.CreatedAt.Format(time.RFC3339),
			optTime(t.LastUsedAt, "never"), optTime(t.ExpiresAt, "never"))
	}
	return tw.Flush()
}

func optTime(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.Format(time.RFC3339)
}

func runTokenRevoke(ctx context.Context, args []string, stdout io.Writer) error {
	c := loadConfig()
	fs := flag.NewFlagSet("token revoke", flag.ContinueOnError)
	c.commonFlags(fs)
	// The id may come before the flags (`token revoke ID --data-dir D`),
	// where the flag package would stop parsing.
	var ids []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		ids, args = args[:1], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ids = append(ids, fs.Args()...)
	if len(ids) != 1 || ids[0] == "" {
		return fmt.Errorf("usage: token revoke ID (the id that token list shows)")
	}
	db, _, err := openState(ctx, c, nil, quietLogger())
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.RevokeToken(ctx, "", ids[0]); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "token %s revoked\n", ids[0])
	return err
}
