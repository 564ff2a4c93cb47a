// Package gc applies deployment retention and removes the artifacts that no
// kept deployment needs, while the service runs.
//
// A pass has two phases. Retention deletes, per project, every final
// deployment that is neither among the newest N nor production (the store
// chooses and deletes in one transaction, so a rollback cannot race it).
// Then every blob that no remaining deployment refers to (through its
// manifest, the files the manifest names, or its input) and that was not
// stored within the grace period is removed.
//
// The grace period is what makes this safe beside running work. A blob
// becomes referenced only after it is stored: the API stores a request's
// files before it writes the deployment row, and the deploy step stores the
// output before it publishes the manifest. Storing content that is already
// there refreshes the file's time, so a blob in either window is always
// younger than the grace period, as long as the period exceeds the longest
// such window (a request, or one deployment attempt). Deployments that are
// queued or running are never pruned, so their inputs stay referenced for
// as long as they wait.
package gc

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Blob is one stored blob.
type Blob struct {
	Digest  string
	Size    int64
	ModTime time.Time
}

// Blobs is an artifact store that the collector can list and prune.
type Blobs interface {
	// Walk calls fn for each stored blob.
	Walk(ctx context.Context, fn func(Blob) error) error
	// Remove deletes the blob unless it was stored at or after cutoff,
	// including by a Put that races with the removal. A blob that is
	// already gone is not an error.
	Remove(ctx context.Context, digest string, cutoff time.Time) (removed bool, err error)
}

// DefaultGrace is how old an unreferenced blob must be before it is removed.
const DefaultGrace = time.Hour

// Collector runs collection passes. Store, Artifacts and Blobs are required.
type Collector struct {
	Store     libra.ReleaseStore
	Artifacts libra.ArtifactStore
	Blobs     Blobs
	// Retention is how many of each project's newest deployments are kept
	// besides production; default libra.DefaultRetention.
	Retention int
	// Grace is how old an unreferenced blob must be to go; default
	// DefaultGrace. It must exceed the longest time between storing a file
	// and recording the deployment that refers to it.
	Grace time.Duration
	// Removed, when set, is told about each deployment retention deleted,
	// so that the site host stops serving it at once.
	Removed func(p libra.PrunedDeployment)
	// Measured, when set, is told what the store holds after each pass
	// that changed anything (not a dry run) and after Measure: metrics keep
	// the store's size from it instead of walking the store per scrape.
	Measured func(stored Tally)
	Logger   *slog.Logger
}

// Tally counts blobs and their bytes.
type Tally struct {
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

func (t *Tally) add(size int64) { t.Blobs++; t.Bytes += size }

// Report is what one pass found and did.
type Report struct {
	DryRun bool `json:"dryRun"`
	// Pruned are the deployments retention deleted (would delete, in a dry run).
	Pruned []libra.PrunedDeployment `json:"pruned"`
	// Stored is everything in the artifact store when the pass looked.
	Stored Tally `json:"stored"`
	// Referenced are blobs that kept deployments need.
	Referenced Tally `json:"referenced"`
	// Young are unreferenced blobs kept because they are within the grace
	// period: files of requests and deployments in flight.
	Young Tally `json:"young"`
	// Removed are the blobs removed (would be removed, in a dry run).
	Removed Tally `json:"removed"`
	// MissingManifests counts kept deployments whose manifest is not in
	// the store; their files cannot be known, and so cannot be protected.
	MissingManifests int           `json:"missingManifests"`
	Duration         time.Duration `json:"durationNs"`
}

func (c *Collector) retention() int {
	if c.Retention > 0 {
		return c.Retention
	}
	return libra.DefaultRetention
}

func (c *Collector) grace() time.Duration {
	if c.Grace > 0 {
		return c.Grace
	}
	return DefaultGrace
}

func (c *Collector) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Collect runs one pass. With dryRun nothing is deleted and the report says
// what would be.
func (c *Collector) Collect(ctx context.Context, dryRun bool) (*Report, error) {
	start := time.Now()
	// Chosen before anything is read: a blob stored after this instant is
	// young whatever the references say.
	cutoff := start.Add(-c.grace())
	rep := &Report{DryRun: dryRun}

	pruned, err := c.Store.PruneDeployments(ctx, c.retention(), dryRun)
	rep.Pruned = pruned
	if !dryRun && c.Removed != nil {
		// Also after a failure: what was deleted before it is gone.
		for _, p := range pruned {
			c.Removed(p)
		}
	}
	if err != nil {
		return rep, fmt.Errorf("apply retention: %w", err)
	}
	skip := map[string]bool{}
	if dryRun {
		for _, p := range pruned {
			skip[p.ID] = true
		}
	}

	keep, missing, err := c.referenced(ctx, skip)
	if err != nil {
		return rep, err
	}
	rep.MissingManifests = missing

	var candidates []Blob
	err = c.Blobs.Walk(ctx, func(b Blob) error {
		rep.Stored.add(b.Size)
		switch {
		case keep[b.Digest]:
			rep.Referenced.add(b.Size)
		case !b.ModTime.Before(cutoff):
			rep.Young.add(b.Size)
		default:
			candidates = append(candidates, b)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("list blobs: %w", err)
	}
	for _, b := range candidates {
		if dryRun {
			rep.Removed.add(b.Size)
			continue
		}
		removed, err := c.Blobs.Remove(ctx, b.Digest, cutoff)
		if err != nil {
			return rep, err
		}
		if removed {
			rep.Removed.add(b.Size)
		} else {
			rep.Young.add(b.Size) // stored again while the pass ran
		}
	}
	rep.Duration = time.Since(start)
	if !dryRun && c.Measured != nil {
		c.Measured(Tally{Blobs: rep.Stored.Blobs - rep.Removed.Blobs, Bytes: rep.Stored.Bytes - rep.Removed.Bytes})
	}
	return rep, nil
}

// Measure counts what the store holds, without deciding anything, and
// tells Measured: the figure a service has before its first pass.
func (c *Collector) Measure(ctx context.Context) (Tally, error) {
	var t Tally
	if err := c.Blobs.Walk(ctx, func(b Blob) error { t.add(b.Size); return nil }); err != nil {
		return t, fmt.Errorf("list blobs: %w", err)
	}
	if c.Measured != nil {
		c.Measured(t)
	}
	return t, nil
}

// referenced returns the set of blobs that the deployments still in the
// store need, leaving out those in skip.
func (c *Collector) referenced(ctx context.Context, skip map[string]bool) (map[string]bool, int, error) {
	var refs []libra.DeploymentRefs
	err := c.Store.EachDeploymentRefs(ctx, "", func(r libra.DeploymentRefs) error {
		if !skip[r.ID] {
			refs = append(refs, r)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read references: %w", err)
	}
	missing := 0
	sizes, err := libra.ReferencedBlobs(ctx, c.Artifacts, refs, func(id, manifest string) {
		missing++
		c.logger().Warn("gc: a kept deployment's manifest is missing; its files cannot be protected",
			"deployment", id, "manifest", manifest)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read references: %w", err)
	}
	keep := make(map[string]bool, len(sizes))
	for d := range sizes {
		keep[d] = true
	}
	return keep, missing, nil
}

// ProjectUsage is what one project's kept deployments hold.
type ProjectUsage struct {
	ProjectID   string `json:"projectId"`
	Deployments int    `json:"deployments"`
	// Bytes counts each distinct file once within the project; files that
	// several projects share count in each of them.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Usage is what the artifact store holds and for whom.
type Usage struct {
	Stored       Tally          `json:"stored"`
	Referenced   Tally          `json:"referenced"`
	Unreferenced Tally          `json:"unreferenced"`
	Projects     []ProjectUsage `json:"projects"`
}

// Usage reports disk use without changing anything.
func (c *Collector) Usage(ctx context.Context) (*Usage, error) {
	byProject := map[string][]libra.DeploymentRefs{}
	err := c.Store.EachDeploymentRefs(ctx, "", func(r libra.DeploymentRefs) error {
		byProject[r.ProjectID] = append(byProject[r.ProjectID], r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read references: %w", err)
	}
	u := &Usage{Projects: []ProjectUsage{}}
	keep := map[string]bool{}
	for id, refs := range byProject {
		sizes, err := libra.ReferencedBlobs(ctx, c.Artifacts, refs, nil)
		if err != nil {
			return nil, err
		}
		pu := ProjectUsage{ProjectID: id, Deployments: len(refs)}
		for d, size := range sizes {
			keep[d] = true
			pu.Files++
			pu.Bytes += size
		}
		u.Projects = append(u.Projects, pu)
	}
	sort.Slice(u.Projects, func(i, j int) bool {
		a, b := u.Projects[i], u.Projects[j]
		return a.Bytes > b.Bytes || a.Bytes == b.Bytes && a.ProjectID < b.ProjectID
	})
	err = c.Blobs.Walk(ctx, func(b Blob) error {
		u.Stored.add(b.Size)
		if keep[b.Digest] {
			u.Referenced.add(b.Size)
		} else {
			u.Unreferenced.add(b.Size)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	return u, nil
}

// Run collects every interval until ctx ends. A failed pass is logged and
// the next one tries again: nothing a pass leaves half done is unsafe.
func (c *Collector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := c.Collect(ctx, false)
		if err != nil {
			if ctx.Err() == nil {
				c.logger().Warn("gc pass failed", "error", err)
			}
			continue
		}
		level := slog.LevelDebug
		if len(rep.Pruned) > 0 || rep.Removed.Blobs > 0 {
			level = slog.LevelInfo
		}
		c.logger().Log(ctx, level, "gc pass", "deployments_pruned", len(rep.Pruned),
			"blobs_removed", rep.Removed.Blobs, "bytes_removed", rep.Removed.Bytes,
			"blobs_stored", rep.Stored.Blobs, "bytes_stored", rep.Stored.Bytes,
			"blobs_young", rep.Young.Blobs, "duration_ms", rep.Duration.Milliseconds())
	}
}
