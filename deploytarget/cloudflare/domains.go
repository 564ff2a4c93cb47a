package cloudflare

import (
	"context"
	"net/http"
)

// attachDomains routes the project's verified custom domains to its Worker
// as Workers custom domains (Cloudflare creates their DNS records and
// certificates in the zone) and returns the first one's URL; "" when there
// is none to attach.
func (t *Target) attachDomains(ctx context.Context, script string, domains []string, logf func(string, string, ...any)) (string, error) {
	if len(domains) == 0 {
		return "", nil
	}
	if t.cfg.ZoneID == "" {
		logf("warn", "cloudflare: custom domains %v are not attached: CLOUDFLARE_ZONE_ID is not set", domains)
		return "", nil
	}
	for _, d := range domains {
		body := jsonBody(map[string]string{"hostname": d, "service": script, "zone_id": t.cfg.ZoneID, "zone_name": t.cfg.ZoneName})
		req := request{method: http.MethodPut, path: "/accounts/" + t.cfg.AccountID + "/workers/domains", body: body}
		if _, err := t.call(ctx, req, nil); err != nil {
			return "", classify("attach the custom domain "+d, err)
		}
		logf("info", "cloudflare: %s routes to Worker %s", d, script)
	}
	return "https://" + domains[0] + "/", nil
}
