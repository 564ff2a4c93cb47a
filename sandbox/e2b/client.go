package e2b

import (
	"context"
	"net/http"

	"github.com/libra-deploy/libra-deploy/sandbox/remote"
)

// newClients returns the control plane's client, whose requests carry the
// key (in X-API-Key, only to E2B_API_URL), and envd's, whose requests carry
// what each sets itself.
func newClients(cfg Config) (api, envd *remote.Client) {
	hc := &http.Client{Transport: cfg.Transport}
	api = &remote.Client{HTTP: hc, Provider: providerName, KeyVar: keyVar, Timeout: cfg.RequestTimeout,
		Authorize: func(req *http.Request) { req.Header.Set("X-API-Key", cfg.APIKey) }}
	envd = &remote.Client{HTTP: hc, Provider: providerName, KeyVar: keyVar, Timeout: cfg.RequestTimeout}
	return api, envd
}

// api sends one control-plane request to E2B_API_URL+path.
func (p *Provider) api(ctx context.Context, op, method, path string, body, out any) error {
	return p.apiClient.JSON(ctx, op, method, p.cfg.APIURL+path, body, out)
}
