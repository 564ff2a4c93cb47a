package libra

import (
	"fmt"
	"strings"
)

// Deployment targets and stable aliases (issue 11).
//
// A production deployment moves its project's production alias when it
// publishes (newest wins, releases.go); a preview deployment never does, and
// is reached through its own site label only, until it is promoted.
//
// A stable alias NAME gives a deployment a second host label,
// {NAME}--{projectHost}, that always serves the newest published deployment
// of the project carrying that alias (newest by acceptance order, as
// production's rule). Alias labels share the "--" namespace with site labels
// ({projectHost}--{random}), and both parts of an alias label are chosen by
// users; so an alias is refused when its project part has the shape of a
// site label's random part (AliasCheck), and a lookup always prefers a
// deployment's site label over an alias (the stores' SiteByLabel).

// Target says whether a deployment goes live on its project's production
// alias when it publishes.
type Target string

const (
	TargetProduction Target = "production"
	TargetPreview    Target = "preview"
)

// ParseTarget reads a target as POST /deploy sends it; "" is production,
// the seed's behaviour.
func ParseTarget(s string) (Target, error) {
	switch Target(s) {
	case "", TargetProduction:
		return TargetProduction, nil
	case TargetPreview:
		return TargetPreview, nil
	}
	return "", fmt.Errorf("must be %q or %q", TargetProduction, TargetPreview)
}

// AliasLabel returns the host label of alias name in the project whose host
// label is projectHost.
func AliasLabel(name, projectHost string) string {
	return name + SiteLabelSeparator + projectHost
}

// SplitAliasLabel is AliasLabel's inverse: the name is everything before the
// first "--". Names never contain "--" (CheckAlias), and neither do project
// hosts (ProjectHost), so one label names at most one alias.
func SplitAliasLabel(label string) (name, projectHost string, ok bool) {
	name, projectHost, ok = strings.Cut(label, SiteLabelSeparator)
	if !ok || name == "" || projectHost == "" || strings.Contains(projectHost, SiteLabelSeparator) {
		return "", "", false
	}
	return name, projectHost, true
}

// CheckAlias accepts an alias name for a project and returns its host
// label. The name is a lowercase host label without "--"; the whole label
// must fit the 63 bytes of one DNS label; the project must have a host
// label; and that host label must not look like the random part of a site
// label, or the alias could take the host name of another org's deployment
// (SECURITY: see the package comment above).
func CheckAlias(name, projectID string) (string, error) {
	if !IsHostLabel(name) {
		return "", fmt.Errorf("must be a lowercase host name label: letters a-z, digits and '-', not starting or ending with '-'")
	}
	if strings.Contains(name, SiteLabelSeparator) {
		return "", fmt.Errorf("may not contain %q, which separates the alias from the project in its host name", SiteLabelSeparator)
	}
	host, ok := ProjectHost(projectID)
	if !ok {
		return "", fmt.Errorf("project %q has no host name label, so it cannot have aliases", projectID)
	}
	if LooksLikeSiteRandom(host) {
		return "", fmt.Errorf("project %q has the shape of a deployment host name's random part, so its aliases could take another deployment's host name; aliases need a project id of another length or with other characters", projectID)
	}
	label := AliasLabel(name, host)
	if len(label) > 63 {
		return "", fmt.Errorf("%q is %d bytes; with the project id the host label may be at most 63 (name at most %d bytes)",
			label, len(label), 63-len(SiteLabelSeparator)-len(host))
	}
	return label, nil
}

// LooksLikeSiteRandom reports whether s could be the part of a site label
// after its "--": the 13 base32 characters NewSiteLabel makes, or the 18 hex
// digits that labels given to older deployments (sqlite migration 0002)
// have. Any 13 lowercase letters and digits count, not just base32's, so
// the rule does not hang on the encoding's alphabet.
func LooksLikeSiteRandom(s string) bool {
	switch len(s) {
	case siteLabelRandomChars:
		return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789") == ""
	case 18:
		return strings.Trim(s, "0123456789abcdef") == ""
	}
	return false
}
