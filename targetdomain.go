package libra

import (
	"context"
	"time"
)

// TargetDomain is a project's custom domain as its deploy target reports
// it: the target runs its own ownership and certificate checks (Cloudflare
// for SaaS, for one), which the domain's owner must pass beside Libra's
// own TXT record before the domain serves.
type TargetDomain struct {
	Target string `json:"target" doc:"The deploy target reporting, e.g. cloudflare."`
	Kind   string `json:"kind" enum:"workers_custom_domain,custom_hostname" doc:"How the target routes the domain: a Workers custom domain in the platform's zone, or a Cloudflare for SaaS custom hostname."`
	Status string `json:"status" doc:"The state as the target reports it: for a custom hostname Cloudflare's status (pending, active, ...); for a Workers custom domain active, or not_attached until a deployment attaches it; unknown when the target could not be asked."`
	// SSLStatus is the certificate's state (custom hostnames only).
	SSLStatus string `json:"sslStatus,omitempty" doc:"The certificate's state, e.g. pending_validation, active."`
	// Ownership is the TXT record the target wants to see before it
	// activates the hostname.
	Ownership *DNSRecord `json:"ownershipVerification,omitempty" doc:"The TXT record proving ownership to the target."`
	// SSLValidation are the TXT records that validate the certificate.
	SSLValidation []DNSRecord `json:"sslValidation,omitempty" doc:"TXT records that validate the certificate."`
	Errors        []string    `json:"errors,omitempty" doc:"Why the target does not serve the domain yet (its verification errors), or why it could not be asked."`
	CheckedAt     time.Time   `json:"checkedAt" doc:"When the target was asked (answers are cached for a few seconds)."`
}

// DNSRecord is a DNS record a domain's owner must create.
type DNSRecord struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DomainStateReader is a deploy target that can report the state of a
// project's custom domains on its side. It is asked when a client reads
// the domains, so every node reports what the target says now; it never
// fails as a whole: a domain it could not ask about is "unknown" with the
// reason in Errors.
type DomainStateReader interface {
	DomainStates(ctx context.Context, projectID string, domains []string) map[string]TargetDomain
}
