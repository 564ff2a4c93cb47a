package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"time"

	"golang.org/x/sync/errgroup"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/client"
)

// uploadConcurrency is how many files are sent at once: enough to hide a
// round trip per small file, few enough not to crowd the server.
const uploadConcurrency = 8

type deployOptions struct {
	*clientFlags
	dir, project, alias string
	prod, preview       bool
	noWait              bool
}

// DeployResult is what `deploy --json` prints. URL is what the deploy
// printed the URL for: the stable alias's with --alias (it keeps serving
// the newest deployment with that alias, which is what one shares, as
// Netlify's --alias prints), else the deployment's own.
type DeployResult struct {
	DeploymentID  string `json:"deploymentId"`
	Status        string `json:"status"`
	URL           string `json:"url"`
	DeploymentURL string `json:"deploymentUrl,omitempty"`
	AliasURL      string `json:"aliasUrl,omitempty"`
	Error         string `json:"error,omitempty"`
	FilesUploaded int    `json:"filesUploaded"`
	FilesPresent  int    `json:"filesPresent"`
	BytesUploaded int64  `json:"bytesUploaded"`
}

func parseDeploy(args []string) (*deployOptions, error) {
	fs := newFlagSet("deploy", "deploy [DIR] --project ID [--prod|--preview] [--alias NAME] [--json] [--no-wait] [--url URL] [--token T]")
	o := &deployOptions{clientFlags: addClientFlags(fs)}
	fs.StringVar(&o.project, "project", "", "the project to deploy to (required)")
	fs.BoolVar(&o.prod, "prod", false, "a production deployment: it goes live on the project's URL when it completes (the server's default)")
	fs.BoolVar(&o.preview, "preview", false, "a preview deployment: its own URL, production unchanged")
	fs.StringVar(&o.alias, "alias", "", "a stable alias: NAME--PROJECT always serves the newest completed deployment with it")
	fs.BoolVar(&o.noWait, "no-wait", false, "exit once the deployment is queued, without following it")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) > 1:
		return nil, usageError("one folder at most, got %d arguments", len(pos))
	case o.project == "":
		return nil, usageError("--project is required")
	case o.prod && o.preview:
		return nil, usageError("--prod and --preview exclude each other")
	}
	o.dir = "."
	if len(pos) == 1 {
		o.dir = pos[0]
	}
	return o, nil
}

func runDeploy(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseDeploy(args)
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	who := whoAmI(ctx, c)
	files, err := listFolder(o.dir)
	if err != nil {
		return err
	}
	me := <-who
	if me.err != nil {
		return clientFailure(me.err)
	}
	res, err := deployFiles(ctx, c, o, files, me.WhoAmI)
	if err != nil {
		return clientFailure(err)
	}
	return finish(stdout, o, res)
}

type whoAmIResult struct {
	client.WhoAmI
	err error
}

// whoAmI asks who the token is while the folder is walked and hashed: the
// round trip then costs nothing.
func whoAmI(ctx context.Context, c *client.Client) <-chan whoAmIResult {
	ch := make(chan whoAmIResult, 1)
	go func() {
		me, err := c.WhoAmI(ctx)
		ch <- whoAmIResult{me, err}
	}()
	return ch
}

// listFolder walks and hashes the folder, refusing early what the server
// would refuse.
func listFolder(dir string) ([]client.LocalFile, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, usageError("%s is not a folder", dir)
	}
	files, err := client.Walk(dir)
	if err != nil {
		return nil, clientFailure(err)
	}
	switch {
	case len(files) == 0:
		return nil, usageError("%s has no files to deploy (after .libraignore and the built-in skips)", dir)
	case len(files) > libra.MaxFiles:
		return nil, usageError("%s has %d files; a deployment may have %d: name the rest in %s", dir, len(files), libra.MaxFiles, client.IgnoreFile)
	}
	for _, f := range files {
		if f.Size > libra.MaxFileBytes {
			return nil, usageError("%s is %d bytes; a file may have at most %d: name it in %s", filepath.Join(dir, f.Path), f.Size, libra.MaxFileBytes, client.IgnoreFile)
		}
	}
	if err := client.Hash(files); err != nil {
		return nil, clientFailure(err)
	}
	return files, nil
}

// deployFiles uploads what the server lacks, queues the deployment and,
// unless told not to, follows it to its end.
func deployFiles(ctx context.Context, c *client.Client, o *deployOptions, files []client.LocalFile, me client.WhoAmI) (*DeployResult, error) {
	res := &DeployResult{}
	if err := uploadMissing(ctx, c, files, uniqueHashes(files), res); err != nil {
		return nil, err
	}
	req := deployRequest(o, me, files)
	acc, err := c.Deploy(ctx, req)
	if again := client.MissingFiles(err); again != nil {
		// Content the server had a moment ago was collected meanwhile
		// (an old upload no deployment used): send it and try once more.
		if err := uploadMissing(ctx, c, files, again, res); err != nil {
			return nil, err
		}
		acc, err = c.Deploy(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	res.DeploymentID, res.Status = acc.DeploymentID, acc.Status
	logf("deployment %s queued", acc.DeploymentID)
	if o.noWait {
		return res, nil
	}
	if err := follow(ctx, c, res); err != nil {
		return res, err
	}
	return res, aliasURL(ctx, c, o, res)
}

// aliasURL makes a completed alias deployment's URL its alias's, which
// only the status names: one request more, after the end, and only with
// --alias.
func aliasURL(ctx context.Context, c *client.Client, o *deployOptions, res *DeployResult) error {
	res.DeploymentURL = res.URL
	if o.alias == "" || res.Status != "completed" {
		return nil
	}
	st, err := c.Status(ctx, res.DeploymentID)
	if err != nil {
		return err
	}
	if st.AliasURL != "" {
		res.AliasURL, res.URL = st.AliasURL, st.AliasURL
	}
	return nil
}

func deployRequest(o *deployOptions, me client.WhoAmI, files []client.LocalFile) client.DeployRequest {
	req := client.DeployRequest{ProjectID: o.project, OrgID: me.OrgID, UserID: me.UserID, Alias: o.alias,
		Files: make([]client.FileRef, len(files))}
	for i, f := range files {
		req.Files[i] = client.FileRef{Path: f.Path, SHA256: f.SHA256, Size: f.Size}
	}
	switch {
	case o.prod:
		req.Target = "production"
	case o.preview:
		req.Target = "preview"
	}
	return req
}

func uniqueHashes(files []client.LocalFile) []string {
	seen := make(map[string]bool, len(files))
	var out []string
	for _, f := range files {
		if !seen[f.SHA256] {
			seen[f.SHA256] = true
			out = append(out, f.SHA256)
		}
	}
	return out
}

// uploadMissing asks which of hashes the server lacks and uploads those,
// several at once, counting them into res.
func uploadMissing(ctx context.Context, c *client.Client, files []client.LocalFile, hashes []string, res *DeployResult) error {
	missing, err := c.Missing(ctx, hashes)
	if err != nil {
		return err
	}
	byHash := make(map[string]client.LocalFile, len(files))
	for _, f := range files {
		byHash[f.SHA256] = f
	}
	want := map[string]bool{}
	var total int64
	for _, h := range missing {
		want[h] = true
		total += byHash[h].Size
	}
	res.FilesPresent = 0
	for _, f := range files {
		if !want[f.SHA256] {
			res.FilesPresent++
		}
	}
	if len(missing) == 0 {
		logf("%d files, all already on the server", len(files))
		return nil
	}
	logf("%d files: uploading %d (%s), %d already on the server", len(files), len(missing), humanBytes(total), res.FilesPresent)
	p := newProgress(total, len(missing))
	defer p.done()
	if err := uploadAll(ctx, c, byHash, missing, p); err != nil {
		return err
	}
	res.FilesUploaded += len(missing)
	res.BytesUploaded += total
	return nil
}

func uploadAll(ctx context.Context, c *client.Client, byHash map[string]client.LocalFile, missing []string, p *progress) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadConcurrency)
	for _, h := range missing {
		f, ok := byHash[h]
		if !ok {
			return fmt.Errorf("the server asked for %s, which is not a file of this folder", h)
		}
		g.Go(func() error {
			open := func() (io.ReadCloser, error) { return os.Open(f.Abs) }
			if err := c.Upload(gctx, h, f.Size, open, p.add); err != nil {
				return fmt.Errorf("upload %s: %w", f.Path, err)
			}
			p.fileDone()
			return nil
		})
	}
	return g.Wait()
}

// finish prints the result and turns the deployment's end into the exit
// code: stdout carries only the URL (or the JSON object), so that
// URL=$(libra-deploy deploy ...) works.
func finish(stdout io.Writer, o *deployOptions, res *DeployResult) error {
	if o.json {
		if err := printJSON(stdout, res); err != nil {
			return err
		}
	} else if res.URL != "" {
		fmt.Fprintln(stdout, res.URL)
	}
	switch res.Status {
	case "failed":
		return &exitError{code: exitFailed, err: fmt.Errorf("deployment %s failed: %s; see `libra-deploy logs %s`", res.DeploymentID, res.Error, res.DeploymentID)}
	case "cancelled":
		return &exitError{code: exitCancelled, err: fmt.Errorf("deployment %s was cancelled", res.DeploymentID)}
	}
	return nil
}

// logf writes a progress line for people on stderr.
func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progressLineEvery is how often plain progress lines are written when
// stderr is not a terminal (a CI log).
const progressLineEvery = 2 * time.Second
