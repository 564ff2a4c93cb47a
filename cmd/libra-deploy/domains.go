package main

import (
	"context"
	"log/slog"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/dnsverify"
)

// domainVerifier returns the check behind POST /projects/{id}/domains/{domain}/verify.
// A DNS_RESOLVER that is set but wrong stops start-up; without one, a host
// whose /etc/resolv.conf names no server still serves, and verification
// answers 503 until it is configured.
func domainVerifier(c *config, logger *slog.Logger) (func(ctx context.Context, domain, token string) libra.DomainCheck, error) {
	v, err := dnsverify.New(c.DNSResolver, 0)
	if err != nil && c.DNSResolver != "" {
		return nil, err
	}
	if err != nil {
		logger.Warn("custom domain verification is off: set DNS_RESOLVER", "error", err)
		return nil, nil
	}
	return v.Check, nil
}
