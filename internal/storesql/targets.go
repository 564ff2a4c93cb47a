package storesql

import (
	"context"
	"errors"

	libra "github.com/libra-deploy/libra-deploy"
)

// Published is what PublishManifest returns about the deployment it
// recorded: where it goes live.
type Published struct {
	Seq       int64
	ProjectID string
	Domain    string
	SiteLabel string
	Target    libra.Target
	Alias     string
}

// ScanPublished reads a row of PublishManifest.
func ScanPublished(row Scanner) (Published, error) {
	var p Published
	err := row.Scan(&p.Seq, &p.ProjectID, &p.Domain, &p.SiteLabel, &p.Target, &p.Alias)
	return p, err
}

// MovesProduction reports whether publishing the deployment may move its
// project's production alias and attach its custom domain: a preview
// never does (targets.go).
func (p Published) MovesProduction() bool { return p.Target != libra.TargetPreview }

// AliasLabel is the host label of the deployment's stable alias, "" when
// it has none (or its project has no host label, which CheckAlias refuses).
func (p Published) AliasLabel() string {
	return AliasLabelOf(p.ProjectID, p.Alias)
}

// AliasLabelOf returns the host label of alias in a project, "" for none.
func AliasLabelOf(projectID, alias string) string {
	host, ok := libra.ProjectHost(projectID)
	if alias == "" || !ok {
		return ""
	}
	return libra.AliasLabel(alias, host)
}

// AliasQuery returns the arguments of SiteByAlias for a host label, and
// false when the label cannot be an alias's.
func AliasQuery(label string) ([]any, bool) {
	name, host, ok := libra.SplitAliasLabel(label)
	if !ok {
		return nil, false
	}
	return []any{host, name, label}, true
}

// TargetOf is the target stored for a new deployment: production unless it
// says preview, as POST /deploy's default.
func TargetOf(d *libra.Deployment) libra.Target {
	if d.Target == libra.TargetPreview {
		return libra.TargetPreview
	}
	return libra.TargetProduction
}

// SiteQuery runs one of the site queries (SiteByLabel, SiteByAlias, ...)
// on a store, returning the deployment's id and manifest.
type SiteQuery func(ctx context.Context, query string, args ...any) (id, manifest string, err error)

// SiteOfLabel returns what a deployment's own host, {label}.{sites domain},
// serves, or else what the stable alias of that label serves (a
// deployment's label always wins: see SiteByAlias).
func SiteOfLabel(ctx context.Context, site SiteQuery, label string) (string, string, error) {
	id, manifest, err := site(ctx, SiteByLabel, label)
	if !errors.Is(err, libra.ErrNotFound) {
		return id, manifest, err
	}
	args, ok := AliasQuery(label)
	if !ok {
		return id, manifest, err
	}
	return site(ctx, SiteByAlias, args...)
}
