package cloudflare

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Domain modes (CLOUDFLARE_DOMAIN_MODE).
const (
	// DomainModeWorkers attaches a project's domains as Workers custom
	// domains: they must lie in the platform's zone.
	DomainModeWorkers = "workers"
	// DomainModeSaaS attaches them as Cloudflare for SaaS custom hostnames
	// of the platform's zone: any customer's domain, which its owner
	// points at the zone and proves with Cloudflare's TXT records.
	DomainModeSaaS = "saas"
)

// attachDomains routes the project's verified custom domains to its Worker
// and returns the first one's URL; "" when there is none to attach.
func (t *Target) attachDomains(ctx context.Context, script string, domains []string, logf func(string, string, ...any)) (string, error) {
	if len(domains) == 0 {
		return "", nil
	}
	if t.cfg.ZoneID == "" {
		logf("warn", "cloudflare: custom domains %v are not attached: CLOUDFLARE_ZONE_ID is not set", domains)
		return "", nil
	}
	attach := t.attachWorkersDomains
	if t.cfg.DomainMode == DomainModeSaaS {
		attach = t.attachCustomHostnames
	}
	if err := attach(ctx, script, domains, logf); err != nil {
		return "", err
	}
	t.states.forget(script)
	return "https://" + domains[0] + "/", nil
}

// attachWorkersDomains makes each domain a Workers custom domain (Cloudflare
// creates its DNS record and certificate in the zone).
func (t *Target) attachWorkersDomains(ctx context.Context, script string, domains []string, logf func(string, string, ...any)) error {
	for _, d := range domains {
		if err := t.putWorkersDomain(ctx, script, d); err != nil {
			return err
		}
		logf("info", "cloudflare: %s routes to Worker %s", d, script)
	}
	return nil
}

func (t *Target) putWorkersDomain(ctx context.Context, script, hostname string) error {
	body := jsonBody(map[string]string{"hostname": hostname, "service": script, "zone_id": t.cfg.ZoneID, "zone_name": t.cfg.ZoneName})
	req := request{method: http.MethodPut, path: "/accounts/" + t.cfg.AccountID + "/workers/domains", body: body}
	if _, err := t.call(ctx, req, nil); err != nil {
		return classify("attach the custom domain "+hostname, err)
	}
	return nil
}

// originHost is the Worker's own host name in the SaaS zone: its Workers
// custom domain, which its custom hostnames name as their origin (the
// spec's custom_origin_server must have a DNS record in the zone, and a
// Workers custom domain is one that routes to the Worker).
func (t *Target) originHost(script string) string { return script + "." + t.cfg.ZoneName }

// attachCustomHostnames creates a custom hostname for each domain Cloudflare
// does not have yet, pointed at the Worker's origin host. Existing ones are
// left as they are: re-creating would restart their validation.
func (t *Target) attachCustomHostnames(ctx context.Context, script string, domains []string, logf func(string, string, ...any)) error {
	origin := t.originHost(script)
	if err := t.putWorkersDomain(ctx, script, origin); err != nil {
		return err
	}
	for _, d := range domains {
		found, err := t.findCustomHostname(ctx, d, t.call)
		if err != nil {
			return classify("look up the custom hostname "+d, err)
		}
		if found != nil {
			logf("info", "cloudflare: custom hostname %s exists (%s, certificate %s)", d, found.Status, found.SSL.Status)
			continue
		}
		if err := t.createCustomHostname(ctx, d, origin); err != nil {
			return err
		}
		logf("info", "cloudflare: custom hostname %s created, origin %s: its owner must add the TXT records shown on the project's domains", d, origin)
	}
	return nil
}

func (t *Target) createCustomHostname(ctx context.Context, hostname, origin string) error {
	body := jsonBody(map[string]any{"hostname": hostname, "custom_origin_server": origin,
		"ssl": map[string]string{"method": "txt", "type": "dv"}})
	req := request{method: http.MethodPost, path: "/zones/" + t.cfg.ZoneID + "/custom_hostnames", body: body}
	if _, err := t.call(ctx, req, nil); err != nil {
		return classify("create the custom hostname "+hostname, err)
	}
	return nil
}

// customHostname is the part of Cloudflare's custom hostname Libra shows.
type customHostname struct {
	ID        string `json:"id"`
	Hostname  string `json:"hostname"`
	Status    string `json:"status"`
	Ownership *struct {
		Type, Name, Value string
	} `json:"ownership_verification"`
	VerificationErrors []string `json:"verification_errors"`
	SSL                struct {
		Status            string `json:"status"`
		ValidationRecords []struct {
			TXTName  string `json:"txt_name"`
			TXTValue string `json:"txt_value"`
		} `json:"validation_records"`
		ValidationErrors []struct {
			Message string `json:"message"`
		} `json:"validation_errors"`
	} `json:"ssl"`
}

type caller func(ctx context.Context, req request, out any) (int, error)

// findCustomHostname returns the zone's custom hostname for hostname, nil
// when there is none. The list filter may match more than the exact name.
func (t *Target) findCustomHostname(ctx context.Context, hostname string, call caller) (*customHostname, error) {
	var list []customHostname
	path := "/zones/" + t.cfg.ZoneID + "/custom_hostnames?hostname=" + url.QueryEscape(hostname)
	if _, err := call(ctx, request{method: http.MethodGet, path: path}, &list); err != nil {
		return nil, err
	}
	for i := range list {
		if strings.EqualFold(list[i].Hostname, hostname) {
			return &list[i], nil
		}
	}
	return nil, nil
}
