package daytona

import (
	"net/http"

	"github.com/libra-deploy/libra-deploy/sandbox/remote"
)

const (
	providerName = "daytona"
	keyVar       = "DAYTONA_API_KEY"
)

// newClient sends Daytona's requests, API and toolbox alike. The key goes
// only into the Authorization header of requests to the configured API and
// toolbox.
func newClient(cfg Config) *remote.Client {
	return &remote.Client{HTTP: &http.Client{Transport: cfg.Transport}, Provider: providerName, KeyVar: keyVar,
		Timeout: cfg.RequestTimeout, Authorize: func(req *http.Request) {
			req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
		}}
}
