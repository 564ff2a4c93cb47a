package cloudflare

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Domain states are read from Cloudflare when a client reads a project's
// domains rather than recorded when a deployment attaches them: Cloudflare
// moves a custom hostname from pending to active on its own schedule, long
// after the deploy step has finished, so only asking shows the truth; and
// since every node asks the same account, every node shows the same.
// A short timeout keeps a slow Cloudflare from holding the API; a small
// per-node cache keeps a polling dashboard from spending the API's rate
// limit.

// cacheLimit bounds the cache; past it the cache starts over.
const cacheLimit = 4096

// DomainStates implements libra.DomainStateReader.
func (t *Target) DomainStates(ctx context.Context, projectID string, domains []string) map[string]libra.TargetDomain {
	script := t.scriptName(projectID)
	out := make(map[string]libra.TargetDomain, len(domains))
	var missing []string
	for _, d := range domains {
		if st, ok := t.states.get(script, d); ok {
			out[d] = st
		} else {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.StateTimeout)
	defer cancel()
	for d, st := range t.readStates(ctx, script, missing) {
		out[d] = st
		if st.Status != "unknown" {
			t.states.put(script, d, st)
		}
	}
	return out
}

// readStates asks Cloudflare once (no retries: the client is waiting)
// about each domain.
func (t *Target) readStates(ctx context.Context, script string, domains []string) map[string]libra.TargetDomain {
	out := make(map[string]libra.TargetDomain, len(domains))
	now := time.Now().UTC()
	if t.cfg.ZoneID == "" {
		for _, d := range domains {
			out[d] = t.state(now, "not_attached", "CLOUDFLARE_ZONE_ID is not set: custom domains are not attached on Cloudflare")
		}
		return out
	}
	if t.cfg.DomainMode == DomainModeSaaS {
		for _, d := range domains {
			out[d] = t.customHostnameState(ctx, now, d)
		}
		return out
	}
	return t.workersDomainStates(ctx, now, script, domains)
}

// state is a domain's state in the configured mode.
func (t *Target) state(now time.Time, status string, errs ...string) libra.TargetDomain {
	kind := "workers_custom_domain"
	if t.cfg.DomainMode == DomainModeSaaS {
		kind = "custom_hostname"
	}
	return libra.TargetDomain{Target: "cloudflare", Kind: kind, Status: status, Errors: errs, CheckedAt: now}
}

// once1 is one try of a call, for reads a client waits on.
func (t *Target) once1(ctx context.Context, req request, out any) (int, error) {
	status, _, err := t.once(ctx, req, out)
	return status, err
}

// workersDomainStates lists the Worker's custom domains in the zone. The
// API reports no state of its own: a listed domain routes to the Worker.
func (t *Target) workersDomainStates(ctx context.Context, now time.Time, script string, domains []string) map[string]libra.TargetDomain {
	var list []struct {
		Hostname string `json:"hostname"`
		Service  string `json:"service"`
	}
	q := url.Values{"zone_id": {t.cfg.ZoneID}, "service": {script}}
	_, err := t.once1(ctx, request{method: http.MethodGet, path: "/accounts/" + t.cfg.AccountID + "/workers/domains?" + q.Encode()}, &list)
	attached := map[string]bool{}
	for _, d := range list {
		attached[strings.ToLower(d.Hostname)] = d.Service == script
	}
	out := make(map[string]libra.TargetDomain, len(domains))
	for _, d := range domains {
		switch {
		case err != nil:
			out[d] = t.state(now, "unknown", "could not ask Cloudflare: "+shortCause(err))
		case attached[d]:
			out[d] = t.state(now, "active")
		case d != t.cfg.ZoneName && !strings.HasSuffix(d, "."+t.cfg.ZoneName):
			out[d] = t.state(now, "not_attached", fmt.Sprintf("%s is not in the zone %s: Cloudflare cannot attach it as a Workers custom domain", d, t.cfg.ZoneName))
		default:
			out[d] = t.state(now, "not_attached")
		}
	}
	return out
}

// customHostnameState is Cloudflare's custom hostname for d, with the
// records its owner must create and Cloudflare's reasons it is not active.
func (t *Target) customHostnameState(ctx context.Context, now time.Time, d string) libra.TargetDomain {
	h, err := t.findCustomHostname(ctx, d, t.once1)
	if err != nil {
		return t.state(now, "unknown", "could not ask Cloudflare: "+shortCause(err))
	}
	if h == nil {
		return t.state(now, "not_attached")
	}
	st := t.state(now, h.Status, h.VerificationErrors...)
	st.SSLStatus = h.SSL.Status
	if h.Ownership != nil && h.Ownership.Name != "" {
		st.Ownership = &libra.DNSRecord{Type: "TXT", Name: h.Ownership.Name, Value: h.Ownership.Value}
	}
	for _, r := range h.SSL.ValidationRecords {
		if r.TXTName != "" {
			st.SSLValidation = append(st.SSLValidation, libra.DNSRecord{Type: "TXT", Name: r.TXTName, Value: r.TXTValue})
		}
	}
	for _, e := range h.SSL.ValidationErrors {
		st.Errors = append(st.Errors, "certificate: "+e.Message)
	}
	return st
}

// stateCache holds recent answers per (Worker, domain).
type stateCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]libra.TargetDomain
}

func (c *stateCache) get(script, domain string) (libra.TargetDomain, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[script+" "+domain]
	if !ok || time.Since(st.CheckedAt) >= c.ttl {
		return libra.TargetDomain{}, false
	}
	return st, true
}

func (c *stateCache) put(script, domain string, st libra.TargetDomain) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheLimit {
		c.m = map[string]libra.TargetDomain{}
	}
	c.m[script+" "+domain] = st
}

// forget drops a Worker's entries: this node just attached its domains.
func (c *stateCache) forget(script string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, script+" ") {
			delete(c.m, k)
		}
	}
}
