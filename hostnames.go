package libra

import (
	"fmt"
	"net/netip"
	"strings"
)

// HostPolicy decides which host names belong to the service itself and so
// can never be a project's custom domain: the API's own names (API_HOSTS),
// the sites domain and every name under it, IP literals, and localhost with
// its subdomains. Without it any org could attach the API's public name and
// serve its own page there in place of the API.
type HostPolicy struct {
	sitesDomain string
	apiHosts    map[string]bool
}

// NewHostPolicy returns the policy for a sites domain and the API's host
// names. Names are normalized like Host headers: case, port and a trailing
// dot do not matter.
func NewHostPolicy(sitesDomain string, apiHosts []string) *HostPolicy {
	p := &HostPolicy{sitesDomain: NormalizeHost(sitesDomain), apiHosts: map[string]bool{}}
	if p.sitesDomain == "" {
		p.sitesDomain = "localhost"
	}
	for _, h := range apiHosts {
		if h = NormalizeHost(h); h != "" {
			p.apiHosts[h] = true
		}
	}
	return p
}

// SitesDomain returns the normalized sites domain.
func (p *HostPolicy) SitesDomain() string { return p.sitesDomain }

// NormalizeHost turns a Host header value or a configured name into the
// form names are compared in: no port, no IPv6 brackets, lower case, no
// trailing dot.
func NormalizeHost(host string) string {
	h := strings.TrimSpace(host)
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h[:i], ':') < 0 {
		h = h[:i]
	}
	return NormalizeDomain(h)
}

// IsAPIHost reports whether host always reaches the API: an API_HOSTS name,
// an IP literal, "localhost" or a name under it (unless localhost is the
// sites domain, whose subdomains are sites), or no name at all.
func (p *HostPolicy) IsAPIHost(host string) bool {
	h := NormalizeHost(host)
	switch {
	case h == "" || p.apiHosts[h] || h == "localhost" || h == p.sitesDomain:
		return true
	case strings.HasSuffix(h, ".localhost"):
		return p.sitesDomain != "localhost"
	}
	_, err := netip.ParseAddr(h)
	return err == nil
}

// UnderSitesDomain reports whether host is the sites domain or a name under
// it.
func (p *HostPolicy) UnderSitesDomain(host string) bool {
	h := NormalizeHost(host)
	return h == p.sitesDomain || strings.HasSuffix(h, "."+p.sitesDomain)
}

// Reserved returns why host can never be a custom domain, nil when it may
// be one as far as reserved names go (CheckCustomDomain checks the rest).
func (p *HostPolicy) Reserved(host string) error {
	h := NormalizeHost(host)
	switch {
	case p.apiHosts[h]:
		return fmt.Errorf("is a host name of this service's API, which is reserved")
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return fmt.Errorf("is localhost, which is reserved")
	case p.UnderSitesDomain(h):
		return fmt.Errorf("is under the sites domain %q, which is reserved", p.sitesDomain)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Errorf("is an IP address, not a host name")
	}
	return nil
}

// CheckCustomDomain accepts a name a project may attach: a valid host name
// (CheckDomain) that is not reserved.
func (p *HostPolicy) CheckCustomDomain(domain string) error {
	if err := p.Reserved(domain); err != nil {
		return err
	}
	return CheckDomain(domain, p.sitesDomain)
}
