package e2b

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/sandbox/remote"
)

const (
	providerName = "e2b"
	keyVar       = "E2B_API_KEY"
	// envdPort is where envd listens in every sandbox.
	envdPort = "49983"
	// DefaultAPIURL and DefaultDomain are E2B's hosted service, as its
	// clients default to.
	DefaultAPIURL = "https://api.e2b.app"
	DefaultDomain = "e2b.app"
)

// Config configures the provider. Zero values take the defaults.
type Config struct {
	APIURL string // E2B_API_URL
	APIKey string // E2B_API_KEY
	// SandboxURL, when set, is envd's base URL for every sandbox
	// (E2B_SANDBOX_URL); otherwise https://49983-{sandboxID}.{domain}.
	SandboxURL string
	// Domain is used when the API's answer names none (E2B_DOMAIN).
	Domain string
	// Template is the sandbox template (E2B_TEMPLATE), which fixes CPU
	// and memory; "base" has Node.js.
	Template string
	// Timeout is the sandbox's time to live, sent on create and renewed
	// while it is in use (E2B_SANDBOX_TIMEOUT); E2B's own default is 15 s.
	Timeout time.Duration
	// RequestTimeout bounds one API request (not a command's run).
	RequestTimeout time.Duration
	// User runs the commands and owns the files ("user" in E2B's images).
	User string
	// Transport carries the requests; nil is http.DefaultTransport.
	Transport http.RoundTripper
}

func (c *Config) defaults() {
	c.APIURL = strings.TrimRight(cmpOr(c.APIURL, DefaultAPIURL), "/")
	c.SandboxURL = strings.TrimRight(c.SandboxURL, "/")
	c.Domain = cmpOr(c.Domain, DefaultDomain)
	c.Template = cmpOr(c.Template, "base")
	c.User = cmpOr(c.User, "user")
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Minute
	}
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Provider creates E2B sandboxes.
type Provider struct {
	cfg       Config
	apiClient *remote.Client // control plane, with the key
	envd      *remote.Client // in-sandbox daemon
}

// New returns a provider; a configuration it cannot use is reported by
// Check, so the service still starts and serves static sites.
func New(cfg Config) *Provider {
	cfg.defaults()
	api, envd := newClients(cfg)
	return &Provider{cfg: cfg, apiClient: api, envd: envd}
}

// Name is "e2b".
func (p *Provider) Name() string { return providerName }

// Check validates the configuration without calling E2B.
func (p *Provider) Check(context.Context) error {
	if p.cfg.APIKey == "" {
		return errors.New("e2b: E2B_API_KEY is not set")
	}
	for name, v := range map[string]string{"E2B_API_URL": p.cfg.APIURL, "E2B_SANDBOX_URL": p.cfg.SandboxURL} {
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("e2b: %s %q is not an http(s) URL", name, v)
		}
	}
	return nil
}

// Create makes a sandbox and uploads the project; whatever fails after the
// sandbox exists kills it.
func (p *Provider) Create(ctx context.Context, opts libra.SandboxOptions) (libra.Sandbox, error) {
	if err := p.Check(ctx); err != nil {
		return nil, libra.Permanent(libra.Errorf(libra.CodeBuildFailed, "%v", err))
	}
	b, err := p.createSandbox(ctx, opts)
	if err != nil {
		return nil, err
	}
	b.startKeepAlive()
	return remote.Open(ctx, providerName, b, opts.WorkDir)
}

// newSandbox is the NewSandbox schema's part that we send.
type newSandbox struct {
	TemplateID string            `json:"templateID"`
	Timeout    int               `json:"timeout"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// sandboxInfo is the Sandbox schema's part that we read.
type sandboxInfo struct {
	SandboxID       string  `json:"sandboxID"`
	EnvdAccessToken string  `json:"envdAccessToken"`
	Domain          *string `json:"domain"`
}

func (p *Provider) createSandbox(ctx context.Context, opts libra.SandboxOptions) (*backend, error) {
	req := newSandbox{
		TemplateID: p.cfg.Template,
		Timeout:    p.timeoutSeconds(),
		Metadata:   map[string]string{"libraDeployment": opts.DeploymentID, "libraOrg": opts.OrgID},
	}
	var sb sandboxInfo
	if err := p.api(ctx, "create sandbox", http.MethodPost, "/sandboxes", req, &sb); err != nil {
		return nil, err
	}
	if sb.SandboxID == "" {
		return nil, errors.New("e2b: create sandbox: the answer has no sandboxID")
	}
	return &backend{p: p, id: sb.SandboxID, token: sb.EnvdAccessToken, envd: p.envdURL(sb)}, nil
}

func (p *Provider) timeoutSeconds() int {
	return max(1, int(p.cfg.Timeout/time.Second))
}

// envdURL is where this sandbox's envd answers.
func (p *Provider) envdURL(sb sandboxInfo) string {
	if p.cfg.SandboxURL != "" {
		return p.cfg.SandboxURL
	}
	domain := p.cfg.Domain
	if sb.Domain != nil && *sb.Domain != "" {
		domain = *sb.Domain
	}
	return "https://" + envdPort + "-" + sb.SandboxID + "." + domain
}
