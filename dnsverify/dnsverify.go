// Package dnsverify checks that whoever attaches a custom domain controls its
// DNS: the TXT record _libra-deploy.{domain} must hold the project's
// verification token. The query goes straight to one configured DNS server
// (DNS_RESOLVER) rather than through the system's stub resolver, so that
// the answer is fresh and tests can point it at a local server.
package dnsverify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	libra "github.com/libra-deploy/libra-deploy"
)

// RecordPrefix is the label in front of the domain that holds the token.
const RecordPrefix = "_libra-deploy."

// defaultTimeout bounds one query (and its retry over TCP): the check runs
// inside an API request.
const defaultTimeout = 5 * time.Second

// Verifier looks up verification records.
type Verifier struct {
	server  string // host:port
	timeout time.Duration
}

// New returns a Verifier asking server ("host:port"); with server "" it
// asks the first name server of /etc/resolv.conf.
func New(server string, timeout time.Duration) (*Verifier, error) {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	if server == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("dns resolver: %w", err)
		}
		if len(conf.Servers) == 0 {
			return nil, errors.New("dns resolver: /etc/resolv.conf names no server")
		}
		server = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return nil, fmt.Errorf("dns resolver %q: want host:port: %w", server, err)
	}
	return &Verifier{server: server, timeout: timeout}, nil
}

// RecordName is the TXT record that must hold the token for domain.
func RecordName(domain string) string { return RecordPrefix + domain }

// Check looks for token in the TXT records of _libra-deploy.{domain}.
func (v *Verifier) Check(ctx context.Context, domain, token string) libra.DomainCheck {
	name := RecordName(domain)
	values, rcode, err := v.lookupTXT(ctx, name)
	switch {
	case err != nil:
		return libra.DomainCheck{Reason: fmt.Sprintf("DNS lookup of %s failed: %v; try again later", name, err)}
	case rcode == dns.RcodeNameError:
		return libra.DomainCheck{Definitive: true, Reason: fmt.Sprintf("no TXT record %s exists", name)}
	case rcode != dns.RcodeSuccess:
		return libra.DomainCheck{Reason: fmt.Sprintf("DNS lookup of %s failed: %s; try again later", name, dns.RcodeToString[rcode])}
	}
	for _, val := range values {
		if strings.TrimSpace(val) == token {
			return libra.DomainCheck{Verified: true}
		}
	}
	if len(values) == 0 {
		return libra.DomainCheck{Definitive: true, Reason: fmt.Sprintf("no TXT record %s exists", name)}
	}
	return libra.DomainCheck{Definitive: true,
		Reason: fmt.Sprintf("the TXT record %s does not hold this project's verification token", name)}
}

// lookupTXT returns the TXT values at name, each record's strings joined
// (a value over 255 bytes is split into several strings), and the rcode.
func (v *Verifier) lookupTXT(ctx context.Context, name string) ([]string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	q.SetEdns0(4096, false)
	c := &dns.Client{Timeout: v.timeout}
	resp, _, err := c.ExchangeContext(ctx, q, v.server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, q, v.server)
	}
	if err != nil {
		return nil, 0, err
	}
	var out []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out, resp.Rcode, nil
}
