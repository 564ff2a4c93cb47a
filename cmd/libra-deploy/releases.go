package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/gc"
	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// gcConfig is retention and garbage collection: how many deployments each
// project keeps, how often serve collects, and how old an unreferenced blob
// must be to go.
type gcConfig struct {
	Retention int
	Interval  time.Duration
	Grace     time.Duration
}

func loadGCConfig() (*gcConfig, error) {
	g := &gcConfig{Retention: envInt("DEPLOYMENT_RETENTION", libra.DefaultRetention)}
	var err error
	if g.Interval, err = envDuration("GC_INTERVAL", 10*time.Minute); err != nil {
		return nil, err
	}
	if g.Grace, err = envDuration("GC_GRACE", gc.DefaultGrace); err != nil {
		return nil, err
	}
	return g, nil
}

// envDuration reads a Go duration ("10m", "90s"); a bare number is taken as
// milliseconds, like the service's other durations (MAX_DEPLOYMENT_TIMEOUT).
func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := env(name, "")
	if v == "" {
		return def, nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a duration like 10m or a number of milliseconds", name, v)
	}
	return d, nil
}

func (g *gcConfig) flags(fs *flag.FlagSet, withInterval bool) {
	fs.IntVar(&g.Retention, "retention", g.Retention, "newest deployments kept per project, besides production (env DEPLOYMENT_RETENTION)")
	fs.DurationVar(&g.Grace, "gc-grace", g.Grace, "age an unreferenced artifact must reach before it is removed (env GC_GRACE)")
	if withInterval {
		fs.DurationVar(&g.Interval, "gc-interval", g.Interval, "how often serve collects garbage; 0 turns it off (env GC_INTERVAL)")
	}
}

// validate checks the settings against the deployment deadline: a deploy
// step stores its output, then publishes it, within one attempt, so a grace
// period shorter than an attempt could remove files about to be published.
func (g *gcConfig) validate(timeout time.Duration) error {
	if g.Retention < 1 {
		return fmt.Errorf("DEPLOYMENT_RETENTION must be at least 1")
	}
	if g.Interval < 0 {
		return fmt.Errorf("GC_INTERVAL must not be negative")
	}
	if g.Grace < timeout {
		return fmt.Errorf("GC_GRACE (%s) must be at least MAX_DEPLOYMENT_TIMEOUT (%s): files a running deployment stored but has not published yet are protected by their age alone", g.Grace, timeout)
	}
	return nil
}

func (g *gcConfig) collector(store libra.ReleaseStore, artifacts *artifactStores, logger *slog.Logger) *gc.Collector {
	return &gc.Collector{
		Store:     store,
		Artifacts: artifacts.Store,
		Blobs:     artifacts.Blobs,
		Retention: g.Retention,
		Grace:     g.Grace,
		Logger:    logger,
	}
}

// openCollector opens the data directory's state and artifacts for a
// command that runs outside serve; closeState releases them.
func (g *gcConfig) openCollector(ctx context.Context, c *config) (col *gc.Collector, closeState func(), err error) {
	db, _, err := openState(ctx, c, nil, quietLogger())
	if err != nil {
		return nil, nil, err
	}
	artifacts, err := openArtifactStore(ctx, loadArtifactConfig(c))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return g.collector(db, artifacts, quietLogger()), func() { db.Close() }, nil
}

// startGC runs collection every g.Interval inside serve. invalidate is
// given the site label of each deployment that retention deleted. The returned function stops the
// loop and waits for a pass in progress, so that the database outlives it.
func startGC(ctx context.Context, g *gcConfig, store libra.ReleaseStore, artifacts *artifactStores,
	invalidate func(siteLabel string), logger *slog.Logger) (stop func()) {
	if g.Interval == 0 {
		logger.Info("periodic garbage collection is off (GC_INTERVAL=0)")
		return func() {}
	}
	c := g.collector(store, artifacts, logger)
	c.Removed = func(p libra.PrunedDeployment) { invalidate(p.SiteLabel) }
	c.Measured = func(t gc.Tally) { metrics.ArtifactStoreMeasured(t.Blobs, t.Bytes) }
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// /metrics has the store's size from the start, not only after
		// the first pass (GC_INTERVAL later).
		if _, err := c.Measure(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("measure the artifact store", "error", err)
		}
		c.Run(ctx, g.Interval)
	}()
	return func() { cancel(); wg.Wait() }
}

// runGC is `libra-deploy gc`: one collection pass, beside a running serve or
// not. A serve on the same data directory learns of deleted deployments
// within its alias cache's lifetime (a second), not at once.
func runGC(ctx context.Context, args []string, stdout io.Writer) error {
	c := loadConfig()
	g, err := loadGCConfig()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "report what would be removed; change nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	c.commonFlags(fs)
	g.flags(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := g.validate(c.Timeout); err != nil {
		return err
	}
	col, closeState, err := g.openCollector(ctx, c)
	if err != nil {
		return err
	}
	defer closeState()
	rep, err := col.Collect(ctx, *dryRun)
	if err != nil {
		if rep != nil && len(rep.Pruned) > 0 && !*dryRun {
			fmt.Fprintf(stdout, "pruned %d deployments before the failure\n", len(rep.Pruned))
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	verb, remove := "pruned", "removed"
	if *dryRun {
		verb, remove = "would prune", "would remove"
	}
	fmt.Fprintf(stdout, "retention: newest %d per project, plus production and unfinished deployments\n", g.Retention)
	fmt.Fprintf(stdout, "%s %d deployments\n", verb, len(rep.Pruned))
	if len(rep.Pruned) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  DEPLOYMENT\tPROJECT\tSTATUS\tCREATED")
		for _, p := range rep.Pruned {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.ID, p.ProjectID, p.Status, p.CreatedAt.Format(time.RFC3339))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "artifacts: %s stored, %s referenced, %s unreferenced but younger than %s\n",
		tally(rep.Stored), tally(rep.Referenced), tally(rep.Young), g.Grace)
	if rep.MissingManifests > 0 {
		fmt.Fprintf(stdout, "warning: %d kept deployments have no manifest in the artifact store\n", rep.MissingManifests)
	}
	_, err = fmt.Fprintf(stdout, "%s %s\n", remove, tally(rep.Removed))
	return err
}

// runDisk is `libra-deploy disk`: what the data directory holds and for whom.
func runDisk(ctx context.Context, args []string, stdout io.Writer) error {
	c := loadConfig()
	fs := flag.NewFlagSet("disk", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	c.commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	col, closeState, err := (&gcConfig{}).openCollector(ctx, c)
	if err != nil {
		return err
	}
	defer closeState()
	u, err := col.Usage(ctx)
	if err != nil {
		return err
	}
	dbBytes, err := databaseBytes(ctx, c)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*gc.Usage
			DatabaseBytes int64 `json:"databaseBytes"`
		}{u, dbBytes})
	}
	fmt.Fprintf(stdout, "database: %s\n", bytesText(dbBytes))
	fmt.Fprintf(stdout, "artifacts: %s stored, %s referenced by retained deployments, %s unreferenced (removed by gc once older than the grace period)\n",
		tally(u.Stored), tally(u.Referenced), tally(u.Unreferenced))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tDEPLOYMENTS\tFILES\tBYTES")
	for _, p := range u.Projects {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", p.ProjectID, p.Deployments, p.Files, bytesText(p.Bytes))
	}
	return tw.Flush()
}

func tally(t gc.Tally) string {
	return fmt.Sprintf("%d blobs (%s)", t.Blobs, bytesText(t.Bytes))
}

// bytesText prints a size in binary units, exact below 1 KiB.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
