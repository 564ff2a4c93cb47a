package libra

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Limits on one deployment's input. Each is checked before anything is
// written, and each breach is a 4xx.
const (
	MaxBodyBytes = 50 << 20
	MaxFiles     = 10_000
	MaxFileBytes = 25 << 20
	MaxPathBytes = 1024
	MaxIDLength  = 128
	MaxDomainLen = 253
)

// File operation types, as sent in historyMessages diffs.
const (
	OpCreate = "create"
	OpEdit   = "edit"
	OpDelete = "delete"
)

// FileOp is one change to the working tree, applied in order during sync.
// The content lives in the artifact store under Digest, so the database row
// stays small and identical files are stored once.
type FileOp struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Digest string `json:"digest,omitempty"`
	Size   int64  `json:"size,omitempty"`
	// Content holds a small file inline, instead of Digest: it is written
	// in the same transaction as the deployment that accepts it, so it
	// needs no durability step of its own (see InlineMaxBytes).
	Content []byte `json:"content,omitempty"`
}

// Small files travel inline in the deployment's row rather than through the
// artifact store: making a blob durable costs a flush of the file system,
// which limited how many deployments the API could accept. The totals keep
// the row small.
const (
	InlineMaxBytes      = 8 << 10
	InlineMaxTotalBytes = 256 << 10
)

// CheckPath rejects any path that could write outside the working directory
// or that different file systems would read differently.
func CheckPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("path is empty")
	case len(p) > MaxPathBytes:
		return fmt.Errorf("path is longer than %d bytes", MaxPathBytes)
	case !utf8.ValidString(p):
		return fmt.Errorf("path is not valid UTF-8")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path contains a NUL byte")
	case strings.ContainsRune(p, '\\'):
		return fmt.Errorf("path contains a backslash")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path is absolute")
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "..":
			return fmt.Errorf("path has a '..' segment")
		case "", ".":
			return fmt.Errorf("path has an empty or '.' segment")
		}
		for _, r := range seg {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("path contains a control character")
			}
		}
	}
	return nil
}

// CheckID accepts the ids clients send (projectId, orgId, userId): 1 to 128
// characters from letters, digits, '-', '_' and '.'.
func CheckID(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if len(s) > MaxIDLength {
		return fmt.Errorf("is longer than %d characters", MaxIDLength)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("may contain only letters, digits, '-', '_' and '.'")
		}
	}
	return nil
}

// ProjectHost returns the label of a project's production alias,
// {label}.{sites domain}: its id in lower case, when that is a host label
// outside the deployment namespace. ok is false for a project that has no
// alias (reachable through custom domains only), including one created
// before ids with "--" were refused.
func ProjectHost(projectID string) (label string, ok bool) {
	label = strings.ToLower(projectID)
	if !IsHostLabel(label) || strings.Contains(label, SiteLabelSeparator) {
		return "", false
	}
	return label, true
}

// CheckProjectID accepts a new project's id: CheckID's rules, and nothing a
// host name could confuse with a deployment's. "--" is the deployment
// namespace (and "xn--" punycode), and an id shaped like a deployment id
// was a deployment's host label before site labels existed: a project named
// so would take over a link someone shared then.
func CheckProjectID(s string) error {
	if err := CheckID(s); err != nil {
		return err
	}
	lower := strings.ToLower(s)
	if strings.Contains(lower, SiteLabelSeparator) {
		return fmt.Errorf("may not contain %q, which marks deployment host names", SiteLabelSeparator)
	}
	if LooksLikeDeploymentID(lower) {
		return fmt.Errorf("has the shape of a deployment id (26 characters of a-z and 2-7), which older deployment host names use")
	}
	return nil
}

// IsHostLabel reports whether s can stand as one DNS label in a host name.
func IsHostLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// CheckHost accepts a Host header whose host name, without port, brackets
// or trailing dot, is no longer than a DNS name may be. Anything longer is
// refused before it is parsed further or remembered: anyone can send one,
// and net/http reads up to MaxHeaderBytes of it.
func CheckHost(host string) error {
	name := host
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.Contains(name[i:], "]") {
		name = name[:i]
	}
	name = strings.TrimSuffix(strings.Trim(name, "[]"), ".")
	if len(name) > MaxDomainLen {
		return fmt.Errorf("host name is %d bytes; the limit is %d", len(name), MaxDomainLen)
	}
	return nil
}

// NormalizeDomain lower-cases a host name and drops one trailing dot.
func NormalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(d), ".")
}

// CheckDomain accepts a custom domain: a host name of at least two labels, not
// an IP address, and not the sites domain or a name under it (those belong to
// deployments and projects).
func CheckDomain(domain, sitesDomain string) error {
	d := NormalizeDomain(domain)
	if d == "" {
		return fmt.Errorf("is empty")
	}
	if len(d) > MaxDomainLen {
		return fmt.Errorf("is longer than %d characters", MaxDomainLen)
	}
	if _, err := netip.ParseAddr(strings.Trim(d, "[]")); err == nil {
		return fmt.Errorf("is an IP address, not a host name")
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return fmt.Errorf("needs at least two labels, like example.com")
	}
	for _, l := range labels {
		if !IsHostLabel(l) {
			return fmt.Errorf("is not a valid host name")
		}
	}
	// A last label of digits only would make "1.2.3.4"-like names that are
	// not IPs pass; no real top-level domain is numeric.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("has a numeric top-level label")
	}
	sd := NormalizeDomain(sitesDomain)
	if sd != "" && (d == sd || strings.HasSuffix(d, "."+sd)) {
		return fmt.Errorf("is under the sites domain %q, which is reserved", sd)
	}
	return nil
}
