package daytona

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

// DefaultAPIURL is Daytona's hosted API, as its clients default to.
const DefaultAPIURL = "https://app.daytona.io/api"

// Config configures the provider. Zero values take the defaults.
type Config struct {
	APIURL string // DAYTONA_API_URL
	APIKey string // DAYTONA_API_KEY
	// Target is the region (DAYTONA_TARGET); empty lets Daytona choose.
	Target string
	// Snapshot is the image the sandbox starts from (DAYTONA_SNAPSHOT);
	// empty is Daytona's default snapshot, which has Node.js.
	Snapshot string
	// CPU cores, memory and disk in GiB; 0 leaves Daytona's default.
	CPU, MemoryGB, DiskGB int
	// CreateTimeout bounds creating a sandbox and waiting until it started.
	CreateTimeout time.Duration
	// RequestTimeout bounds one API request (not a command's run).
	RequestTimeout time.Duration
	// PollInterval is how often state and command logs are polled.
	PollInterval time.Duration
	// AutoStopMinutes stops (and so, with auto-delete 0, deletes) a
	// sandbox this service failed to delete, e.g. after a crash.
	AutoStopMinutes int
	// Transport carries the requests; nil is http.DefaultTransport.
	Transport http.RoundTripper
}

func (c *Config) defaults() {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	if c.CreateTimeout <= 0 {
		c.CreateTimeout = 2 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.AutoStopMinutes <= 0 {
		c.AutoStopMinutes = 60
	}
}

// Provider creates Daytona sandboxes.
type Provider struct {
	cfg Config
	c   *remote.Client
}

// New returns a provider; a configuration it cannot use is reported by
// Check, so the service still starts and serves static sites.
func New(cfg Config) *Provider {
	cfg.defaults()
	return &Provider{cfg: cfg, c: newClient(cfg)}
}

// Name is "daytona".
func (p *Provider) Name() string { return providerName }

// Check validates the configuration without calling Daytona.
func (p *Provider) Check(context.Context) error {
	if p.cfg.APIKey == "" {
		return errors.New("daytona: DAYTONA_API_KEY is not set")
	}
	u, err := url.Parse(p.cfg.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("daytona: DAYTONA_API_URL %q is not an http(s) URL", p.cfg.APIURL)
	}
	return nil
}

// Create makes a sandbox, waits until it started and uploads the project.
// Whatever fails after the sandbox exists deletes it.
func (p *Provider) Create(ctx context.Context, opts libra.SandboxOptions) (libra.Sandbox, error) {
	if err := p.Check(ctx); err != nil {
		return nil, libra.Permanent(libra.Errorf(libra.CodeBuildFailed, "%v", err))
	}
	sb, err := p.createSandbox(ctx, opts)
	if err != nil {
		return nil, err
	}
	b := &backend{p: p, id: sb.ID}
	if err := p.waitStarted(ctx, b, sb); err != nil {
		_ = b.Delete(context.WithoutCancel(ctx))
		return nil, err
	}
	return remote.Open(ctx, providerName, b, opts.WorkDir)
}

// createRequest is the CreateSandbox schema's part that we send.
type createRequest struct {
	Snapshot            string            `json:"snapshot,omitempty"`
	Target              string            `json:"target,omitempty"`
	CPU                 int               `json:"cpu,omitempty"`
	Memory              int               `json:"memory,omitempty"`
	Disk                int               `json:"disk,omitempty"`
	Labels              map[string]string `json:"labels"`
	AutoStopInterval    int               `json:"autoStopInterval"`
	AutoDeleteInterval  int               `json:"autoDeleteInterval"`
	AutoArchiveInterval int               `json:"autoArchiveInterval,omitempty"`
}

// sandboxInfo is the Sandbox schema's part that we read.
type sandboxInfo struct {
	ID              string `json:"id"`
	State           string `json:"state"`
	ErrorReason     string `json:"errorReason"`
	ToolboxProxyURL string `json:"toolboxProxyUrl"`
}

func (p *Provider) createSandbox(ctx context.Context, opts libra.SandboxOptions) (*sandboxInfo, error) {
	req := createRequest{
		Snapshot: p.cfg.Snapshot, Target: p.cfg.Target,
		CPU: p.cfg.CPU, Memory: p.cfg.MemoryGB, Disk: p.cfg.DiskGB,
		Labels:           map[string]string{"libra-deployment": opts.DeploymentID, "libra-org": opts.OrgID},
		AutoStopInterval: p.cfg.AutoStopMinutes,
		// 0: deleted as soon as it stops, so one we lost track of does
		// not linger.
		AutoDeleteInterval: 0,
	}
	var sb sandboxInfo
	if err := p.c.JSON(ctx, "create sandbox", http.MethodPost, p.cfg.APIURL+"/sandbox", req, &sb); err != nil {
		return nil, err
	}
	if sb.ID == "" {
		return nil, errors.New("daytona: create sandbox: the answer has no id")
	}
	return &sb, nil
}

// waitStarted polls the sandbox until it started. A sandbox in error is
// Daytona's fault (retried); a snapshot that failed to build is the
// configuration's (permanent).
func (p *Provider) waitStarted(parent context.Context, b *backend, sb *sandboxInfo) error {
	ctx, cancel := context.WithTimeout(parent, p.cfg.CreateTimeout)
	defer cancel()
	for {
		switch sb.State {
		case "started":
			return b.setToolbox(ctx, sb.ToolboxProxyURL)
		case "build_failed":
			return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
				"daytona could not build the sandbox's snapshot %q: %s; check DAYTONA_SNAPSHOT", p.cfg.Snapshot, sb.ErrorReason))
		case "error":
			return fmt.Errorf("daytona: sandbox %s failed to start: %s", sb.ID, sb.ErrorReason)
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return fmt.Errorf("daytona: wait for sandbox %s: %w", sb.ID, err)
			}
			return fmt.Errorf("daytona: sandbox %s not started after %s (state %q; will retry)", sb.ID, p.cfg.CreateTimeout, sb.State)
		case <-time.After(p.cfg.PollInterval):
		}
		var next sandboxInfo
		if err := p.c.JSON(ctx, "get sandbox", http.MethodGet, p.cfg.APIURL+"/sandbox/"+url.PathEscape(sb.ID), nil, &next); err != nil {
			return err
		}
		*sb = next
	}
}
