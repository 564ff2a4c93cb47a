// Package cloudflare publishes deployments as Cloudflare Workers with
// static assets (DEPLOY_TARGET=cloudflare), through the API wrangler uses:
// an assets upload session, the buckets of files Cloudflare lacks, then the
// Worker script carrying the session's completion token.
package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// DefaultAPIBase is Cloudflare's v4 API (CLOUDFLARE_API_BASE_URL, as
// wrangler names it).
const DefaultAPIBase = "https://api.cloudflare.com/client/v4"

// DefaultScriptName names a project's Worker; {project} is its id.
const DefaultScriptName = "libra-{project}"

// Config configures the target. AccountID and Token are required.
type Config struct {
	APIBase   string
	AccountID string
	Token     string
	// ScriptName is the template of a project's Worker name: {project}
	// is replaced by the project id, lower-cased.
	ScriptName string
	// DispatchNamespace, when set, puts every Worker into that Workers
	// for Platforms namespace instead of the account's own scripts.
	DispatchNamespace string
	// URLTemplate, when set, is a deployment's URL with {script} replaced
	// (a dispatch namespace's own routing); otherwise the Worker's
	// workers.dev URL, which the API names.
	URLTemplate string
	// ZoneID and ZoneName, when set, are the zone a project's verified
	// custom domains are attached in as Workers custom domains
	// (CLOUDFLARE_ZONE_ID, CLOUDFLARE_ZONE_NAME; the API takes both).
	ZoneID   string
	ZoneName string
	// DomainMode is how domains are attached: DomainModeWorkers (the
	// default) or DomainModeSaaS, custom hostnames of the zone
	// (CLOUDFLARE_DOMAIN_MODE).
	DomainMode string
	// StateTTL is how long a node reuses a domain state it read from
	// Cloudflare (default 10 s; CLOUDFLARE_DOMAIN_STATE_TTL); StateTimeout
	// bounds the read (default 5 s).
	StateTTL     time.Duration
	StateTimeout time.Duration
	HTTPClient   *http.Client
	// MaxAttempts bounds the tries of one API call (default 5); RetryBase
	// is the first pause between them (default 500 ms).
	MaxAttempts int
	RetryBase   time.Duration
}

// Target is a Cloudflare deploy target.
type Target struct {
	cfg    Config
	states *stateCache
}

var accountIDPattern = regexp.MustCompile(`^[0-9a-zA-Z]{1,32}$`)

// New checks cfg and fills its defaults.
func New(cfg Config) (*Target, error) {
	if cfg.Token == "" || cfg.AccountID == "" {
		return nil, errors.New("DEPLOY_TARGET=cloudflare needs CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID")
	}
	if !accountIDPattern.MatchString(cfg.AccountID) {
		return nil, errors.New("CLOUDFLARE_ACCOUNT_ID must be the account's 32-character id")
	}
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	cfg.APIBase = strings.TrimRight(cfg.APIBase, "/")
	if !strings.HasPrefix(cfg.APIBase, "https://") && !strings.HasPrefix(cfg.APIBase, "http://") {
		return nil, fmt.Errorf("CLOUDFLARE_API_BASE_URL %q is not an http(s) URL", cfg.APIBase)
	}
	if cfg.ScriptName == "" {
		cfg.ScriptName = DefaultScriptName
	}
	if !strings.Contains(cfg.ScriptName, "{project}") {
		return nil, errors.New("the Cloudflare script name template must contain {project}: each project needs its own Worker")
	}
	if cfg.DispatchNamespace != "" && cfg.URLTemplate == "" {
		return nil, errors.New("CLOUDFLARE_DISPATCH_NAMESPACE needs CLOUDFLARE_URL_TEMPLATE: Workers in a dispatch namespace have no workers.dev URL")
	}
	if (cfg.ZoneID == "") != (cfg.ZoneName == "") {
		return nil, errors.New("custom domains on Cloudflare need both CLOUDFLARE_ZONE_ID and CLOUDFLARE_ZONE_NAME (the zone's domain, e.g. example.com)")
	}
	if err := checkDomainMode(&cfg); err != nil {
		return nil, err
	}
	fillDefaults(&cfg)
	return &Target{cfg: cfg, states: &stateCache{ttl: cfg.StateTTL}}, nil
}

// checkDomainMode checks CLOUDFLARE_DOMAIN_MODE: custom hostnames need the
// SaaS zone, whose Workers custom domain is their origin.
func checkDomainMode(cfg *Config) error {
	switch cfg.DomainMode {
	case "":
		cfg.DomainMode = DomainModeWorkers
	case DomainModeWorkers:
	case DomainModeSaaS:
		if cfg.ZoneID == "" {
			return errors.New("CLOUDFLARE_DOMAIN_MODE=saas needs CLOUDFLARE_ZONE_ID and CLOUDFLARE_ZONE_NAME: the Cloudflare for SaaS zone")
		}
	default:
		return fmt.Errorf("CLOUDFLARE_DOMAIN_MODE %q is not one of workers, saas", cfg.DomainMode)
	}
	return nil
}

func fillDefaults(cfg *Config) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 500 * time.Millisecond
	}
	if cfg.StateTTL == 0 {
		cfg.StateTTL = 10 * time.Second
	}
	if cfg.StateTimeout <= 0 {
		cfg.StateTimeout = 5 * time.Second
	}
}

// Name implements libra.DeployTarget.
func (t *Target) Name() string { return "cloudflare" }

// scriptName is a project's Worker name. Cloudflare allows lower-case
// letters, digits, - and _, at most 63 characters.
func (t *Target) scriptName(projectID string) string {
	name := strings.ReplaceAll(t.cfg.ScriptName, "{project}", strings.ToLower(projectID))
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// scriptPath is the API path of a Worker: the account's, or the dispatch
// namespace's.
func (t *Target) scriptPath(script string) string {
	if t.cfg.DispatchNamespace != "" {
		return fmt.Sprintf("/accounts/%s/workers/dispatch/namespaces/%s/scripts/%s", t.cfg.AccountID, t.cfg.DispatchNamespace, script)
	}
	return fmt.Sprintf("/accounts/%s/workers/scripts/%s", t.cfg.AccountID, script)
}

// Publish implements libra.DeployTarget: it uploads the assets Cloudflare
// lacks, then the Worker, and returns the Worker's URL.
func (t *Target) Publish(ctx context.Context, req libra.PublishRequest) (string, error) {
	logf := func(level, format string, args ...any) {
		if req.Log != nil {
			req.Log(level, fmt.Sprintf(format, args...))
		}
	}
	script := t.scriptName(req.ProjectID)
	assets, err := readAssets(ctx, req.Artifacts, req.Manifest)
	if err != nil {
		return "", err
	}
	completion, uploaded, err := t.uploadAssets(ctx, script, assets)
	if err != nil {
		return "", err
	}
	logf("info", "cloudflare: %d assets in the manifest, %d uploaded (the rest Cloudflare already had)", len(assets.manifest), uploaded)
	if err := t.uploadScript(ctx, script, completion, assets, req); err != nil {
		return "", err
	}
	url, err := t.url(ctx, script)
	if err != nil {
		return "", err
	}
	if custom, err := t.attachDomains(ctx, script, req.Domains, logf); err != nil {
		return "", err
	} else if custom != "" {
		url = custom
	}
	logf("info", "cloudflare: Worker %s published at %s", script, url)
	return url, nil
}

// url is the Worker's public URL: the template's, or its workers.dev one
// (enabled first, as wrangler does on a first deploy).
func (t *Target) url(ctx context.Context, script string) (string, error) {
	if t.cfg.URLTemplate != "" {
		return strings.ReplaceAll(t.cfg.URLTemplate, "{script}", script), nil
	}
	body := jsonBody(map[string]bool{"enabled": true, "previews_enabled": false})
	if _, err := t.call(ctx, request{method: http.MethodPost, path: t.scriptPath(script) + "/subdomain", body: body}, nil); err != nil {
		return "", classify("enable the Worker's workers.dev route", err)
	}
	var sub struct {
		Subdomain string `json:"subdomain"`
	}
	if _, err := t.call(ctx, request{method: http.MethodGet, path: "/accounts/" + t.cfg.AccountID + "/workers/subdomain"}, &sub); err != nil {
		return "", classify("read the account's workers.dev subdomain", err)
	}
	if sub.Subdomain == "" {
		return "", libra.Permanent(libra.Errorf(libra.CodeUnavailable,
			"the Cloudflare account has no workers.dev subdomain yet: choose one in the dashboard (Workers & Pages), or set CLOUDFLARE_URL_TEMPLATE"))
	}
	return fmt.Sprintf("https://%s.%s.workers.dev/", script, sub.Subdomain), nil
}
