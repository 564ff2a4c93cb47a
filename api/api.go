// Package api is libra-deploy's HTTP API: deployments, their status, projects,
// health, the OpenAPI description and its interactive reference.
//
// Routes are Huma operations on net/http, so the Go types below both validate
// requests and generate /openapi.json. Every error, including Huma's own,
// the router's 404 and 405 and a recovered panic, is sent in one format:
// {success:false, error, message, details?, timestamp}.
package api

import (
	"context"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"golang.org/x/time/rate"

	libra "github.com/libra-deploy/libra-deploy"
)

// SiteHost serves published sites. Requests whose Host is a site host go to
// it before any API logic: sites have no CORS, auth or API routes.
type SiteHost interface {
	IsSiteHost(host string) bool
	http.Handler
}

// Config is what New needs. Store and Artifacts are required.
type Config struct {
	Store libra.Store
	// CheckWebhookURL validates a new webhook endpoint's URL; nil refuses
	// private addresses (webhook.Sender.CheckURL).
	CheckWebhookURL func(ctx context.Context, url string) error
	// AdminToken, when set, is the credential of the admin routes.
	AdminToken string
	// SiteServed, when set, is told of every site response served here
	// (status, body bytes): metrics count them.
	SiteServed func(status int, bytes int64)
	// Admin are routes (ServeMux patterns, e.g. "GET /metrics") served
	// only to admin callers: see requireAdmin.
	Admin     map[string]http.Handler
	Artifacts libra.ArtifactStore
	// EnvSealer encrypts build secrets (env.go); without it, setting a
	// secret answers 503.
	EnvSealer Sealer
	// Sites may be nil.
	Sites SiteHost
	// Checks are the health checks by name ("database", "queue", ...). When
	// nil, a "database" check pings Store.
	Checks map[string]func(ctx context.Context) error
	// InfoChecks are reported in /health like Checks but never make the
	// service unhealthy: a host without a working build sandbox still
	// deploys static sites, so "sandbox" is one of these.
	InfoChecks map[string]func(ctx context.Context) error

	Version   string
	StartedAt time.Time

	// CORSOrigins are the origins browsers may call the API from; see
	// originMatcher for the pattern syntax. Default DefaultCORSOrigins.
	CORSOrigins []string

	// RateLimit and RateBurst bound each token's requests (token bucket).
	// Defaults 10/s and 50; rate.Inf disables the limit.
	RateLimit rate.Limit
	RateBurst int

	// SitesDomain is the domain deployments are served under; custom
	// domains may not be at or below it. Default "localhost".
	SitesDomain string
	// APIHosts are the host names the API is reached by (API_HOSTS): they
	// can never be attached as custom domains.
	APIHosts []string
	// VerifyDomain looks for a project's verification token in the DNS of
	// a custom domain (dnsverify). Without it, verification answers 503.
	VerifyDomain func(ctx context.Context, domain, token string) libra.DomainCheck

	// SiteURL returns the URL of a site host name label: a deployment's
	// site label or a project's alias label (libra.ProjectHost). When nil,
	// responses leave alias URLs out.
	SiteURL func(label string) string
	// Republish, when set, publishes a kept deployment again on the
	// deploy target before a rollback points production at it (the
	// target serves what it was last sent, not what the store says).
	Republish func(ctx context.Context, projectID, deploymentID string) error
	// DomainStates, when set, reports the project's custom domains as the
	// deploy target sees them (libra.DomainStateReader).
	DomainStates func(ctx context.Context, projectID string, domains []string) map[string]libra.TargetDomain
	// Invalidate, when set, is told the label (a deployment's site label,
	// or a project's lower-cased id) whose site a request changed, so the site
	// host drops what it cached for it and for every custom domain.
	Invalidate func(label string)

	Logger *slog.Logger

	// Event streams (events.go). EventKeepAlive is the SSE keep-alive
	// period (default 15 s), EventPoll the safety-net poll of a followed
	// deployment (default 2 s), MaxStreamsPerOrg the streams an org may
	// hold open here (default 20). Closing Stopping ends every stream:
	// the server is shutting down, and clients resume elsewhere.
	EventKeepAlive   time.Duration
	EventPoll        time.Duration
	MaxStreamsPerOrg int
	Stopping         <-chan struct{}
}

type server struct {
	cfg     Config
	hosts   *libra.HostPolicy
	log     *slog.Logger
	checks  map[string]func(context.Context) error
	info    map[string]bool
	origins originMatcher
	limits  *limiters
	uploads *limiters // PUT /files/{sha256} (files.go)
	docs    *docsAssets
	streams *streamLimiter
}

// deployBodyTimeout is how long a client may take to send a deployment body:
// 50 MiB over a slow uplink takes minutes, not Huma's default 5 s.
const deployBodyTimeout = 3 * time.Minute

// New returns the API's handler.
func New(cfg Config) http.Handler {
	if cfg.Store == nil || cfg.Artifacts == nil {
		panic("api.New: Store and Artifacts are required")
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.StartedAt.IsZero() {
		cfg.StartedAt = time.Now()
	}
	if len(cfg.CORSOrigins) == 0 {
		cfg.CORSOrigins = DefaultCORSOrigins
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 10
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = 50
	}
	if cfg.SitesDomain == "" {
		cfg.SitesDomain = "localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	eventDefaults(&cfg)
	s := &server{
		cfg:     cfg,
		hosts:   libra.NewHostPolicy(cfg.SitesDomain, cfg.APIHosts),
		log:     cfg.Logger,
		origins: newOriginMatcher(cfg.CORSOrigins),
		limits:  newLimiters(cfg.RateLimit, cfg.RateBurst),
		uploads: newUploadLimiters(cfg.RateLimit, cfg.RateBurst),
		docs:    newDocsAssets(),
		streams: newStreamLimiter(cfg.MaxStreamsPerOrg),
	}
	if cfg.Checks == nil {
		s.checks = map[string]func(context.Context) error{"database": cfg.Store.Ping}
	} else {
		// A copy: /health reads it from many goroutines, and the caller's
		// map may change after New returns.
		s.checks = make(map[string]func(context.Context) error, len(cfg.Checks))
		for name, check := range cfg.Checks {
			s.checks[name] = check
		}
	}
	s.info = map[string]bool{}
	for name, check := range cfg.InfoChecks {
		s.checks[name] = check
		s.info[name] = true
	}
	if s.docs.bundle == nil {
		s.log.Warn("built without the Scalar bundle: /docs explains how to add it (go generate ./api/...)")
	}

	mux := http.NewServeMux()
	s.register(humago.New(exactRoot{mux}, s.humaConfig()))
	mux.HandleFunc("GET /docs", s.docs.servePage)
	mux.HandleFunc("GET /docs/scalar.js", s.docs.serveBundle)
	mux.HandleFunc("GET /docs/init.js", s.docs.serveInit)
	for pattern, h := range cfg.Admin {
		mux.Handle(pattern, s.requireAdmin(h))
	}

	api := s.observe(s.cors(limitBody(routeErrors(mux))))
	if cfg.Sites == nil {
		return api
	}
	sites := countSite(cfg.Sites, cfg.SiteServed)
	isSite := cfg.Sites.IsSiteHost
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := libra.CheckHost(r.Host); err != nil {
			// Before the site host sees it: it caches every Host it is
			// asked about (issue 8).
			writeError(w, newError(http.StatusBadRequest, libra.CodeValidation, "Host header: "+err.Error(), nil))
			return
		}
		if isSite(r.Host) {
			sites.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

func (s *server) humaConfig() huma.Config {
	oapi := &huma.OpenAPI{
		OpenAPI: "3.1.0",
		Info: &huma.Info{
			Title:   "libra-deploy",
			Version: s.cfg.Version,
			Description: "Self-hosted deployment service. POST a project's files to /deploy, " +
				"then poll /deploy-status until the deployment is completed or failed.\n\n" +
				"Every error has the body `{success:false, error, message, details?, timestamp}`, " +
				"where `error` is a stable code. Every response carries `X-Request-Id`.",
			License: &huma.License{Name: licenseName, Identifier: licenseID},
			Contact: &huma.Contact{Name: "The operators of this libra-deploy server"},
		},
		Tags: []*huma.Tag{
			{Name: "Deployments", Description: "Queue deployments and follow them."},
			{Name: "Projects", Description: "Projects, their deployments and their production alias."},
			{Name: "Domains", Description: "Custom domains of a project."},
			{Name: "Tokens", Description: "The org's API tokens: list and revoke."},
			{Name: "Webhooks", Description: "Signed notifications of a project's deployments (Standard Webhooks)."},
			{Name: "Service", Description: "The service itself."},
		},
		// Relative: the API answers on whatever host and port serve this
		// document, which only the client knows.
		Servers: []*huma.Server{{URL: "/", Description: "The server this document was fetched from."}},
		Components: &huma.Components{
			Schemas: huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer),
			SecuritySchemes: map[string]*huma.SecurityScheme{
				"bearer":  {Type: "http", Scheme: "bearer", Description: "An API token issued by the service (prefix ld_)."},
				"session": {Type: "apiKey", In: "cookie", Name: "session", Description: "The same token, as the session cookie."},
			},
		},
		// Huma documents 422 for every operation with a body; this API
		// answers validation failures with 400, so the document says so.
		OnAddOperation: []huma.AddOpFunc{publicByDefault, func(_ *huma.OpenAPI, op *huma.Operation) {
			if r, ok := op.Responses["422"]; ok {
				delete(op.Responses, "422")
				if _, has := op.Responses["400"]; !has {
					r.Description = http.StatusText(http.StatusBadRequest)
					op.Responses["400"] = r
				}
			}
		}},
	}
	return huma.Config{
		OpenAPI:       oapi,
		OpenAPIPath:   "/openapi",
		Formats:       map[string]huma.Format{"application/json": huma.DefaultJSONFormat, "json": huma.DefaultJSONFormat},
		DefaultFormat: "application/json",
	}
}

var tokenSecurity = []map[string][]string{{"bearer": {}}, {"session": {}}}

// The document's licence. The repository states none yet: the lead sets
// the real one here (an SPDX identifier, or a LicenseRef- of its own).
const (
	licenseName = "Proprietary"
	licenseID   = "LicenseRef-libra-deploy-proprietary"
)

// publicByDefault makes an operation that names no security scheme say so
// with an empty requirement ([{}]): without it, linters and clients cannot
// tell "public" from "forgot to document".
func publicByDefault(_ *huma.OpenAPI, op *huma.Operation) {
	if op.Security == nil {
		op.Security = []map[string][]string{{}}
	}
}

func (s *server) register(api huma.API) {
	authed := huma.Middlewares{s.authenticate, requireJSON}
	s.registerEvents(api)

	huma.Register(api, huma.Operation{
		OperationID:   "deploy",
		Method:        http.MethodPost,
		Path:          "/deploy",
		Summary:       "Queue a deployment",
		Description:   "Validates the request, stores the files, charges the org's monthly quota and queues the deployment, all or nothing.",
		Tags:          []string{"Deployments"},
		DefaultStatus: http.StatusAccepted,
		// The body is read and checked by deployInput.Resolve, not by Huma
		// (see deploybody.go), so no body limits are set here.
		Security:    tokenSecurity,
		Middlewares: authed,
		Errors:      []int{400, 401, 403, 404, 409, 413, 415, 429},
	}, s.deploy)
	documentDeployBody(api)

	huma.Register(api, huma.Operation{
		OperationID: "deployStatus",
		Method:      http.MethodGet,
		Path:        "/deploy-status",
		Summary:     "Get a deployment's status",
		Description: "Needs no token: deployment ids are unguessable (128 random bits). " +
			"`logs` are text lines for people; pass logEntries=true for the same lines as objects in `logEntries`.",
		Tags:   []string{"Deployments"},
		Errors: []int{400, 404},
	}, s.deployStatus)

	huma.Register(api, huma.Operation{
		OperationID: "deployLog",
		Method:      http.MethodGet,
		Path:        "/deploy-log",
		Summary:     "Get a deployment's full build log",
		Description: "The install and build output in full, as plain text (the status's logs are capped), streamed; " +
			"Range requests are answered. Kept for deployments that built and published. Needs a token of the deployment's org: " +
			"another org's deployment is 404, as if it did not exist.",
		Tags:        []string{"Deployments"},
		Security:    tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate},
		Errors:      []int{400, 401, 404, 416, 429},
		Responses: map[string]*huma.Response{
			"200": {Description: "The log.", Content: map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}}},
			"206": {Description: "The part of the log a Range asked for.", Content: map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}}},
		},
	}, s.deployLog)

	huma.Register(api, huma.Operation{
		OperationID:   "createProject",
		Method:        http.MethodPost,
		Path:          "/projects",
		Summary:       "Create a project",
		Description:   "Creates a project in the token's org.",
		Tags:          []string{"Projects"},
		DefaultStatus: http.StatusCreated,
		Security:      tokenSecurity,
		Middlewares:   authed,
		Errors:        []int{400, 401, 409, 413, 415, 429},
	}, s.createProject)

	s.registerReleases(api)
	s.registerUsage(api)
	s.registerTokens(api)
	s.registerProjectDelete(api)
	s.registerCancel(api)
	s.registerTargets(api)
	s.registerEnv(api)
	s.registerFiles(api)
	s.registerWhoAmI(api)
	s.registerWebhooks(api)

	huma.Register(api, huma.Operation{
		OperationID: "health",
		Method:      http.MethodGet,
		Path:        "/health",
		Summary:     "Health",
		Description: "Runs every health check; 503 with status unhealthy when any fails. Each check is healthy or unhealthy.",
		Tags:        []string{"Service"},
		Errors:      []int{413},
		Responses: map[string]*huma.Response{"503": {
			Description: "A check failed; the body is the same as for 200.",
			Content:     map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Ref: "#/components/schemas/Health"}}},
		}},
	}, s.health)

	huma.Register(api, huma.Operation{
		OperationID: "root",
		Method:      http.MethodGet,
		Path:        "/",
		Summary:     "Service information",
		Description: "What the service is, its version and its routes.",
		Tags:        []string{"Service"},
		Errors:      []int{413},
	}, s.root)
}

// requireJSON refuses request bodies that are not JSON. Huma alone would
// treat a missing Content-Type as JSON and accept any "+json" type.
func requireJSON(ctx huma.Context, next func(huma.Context)) {
	ct := ctx.Header("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || !strings.EqualFold(mt, "application/json") {
		got := ct
		if got == "" {
			got = "none"
		}
		writeHumaError(ctx, newError(http.StatusUnsupportedMediaType, libra.CodeUnsupportedMedia,
			"request body must be application/json", map[string]any{"contentType": truncate(got, 100)}))
		return
	}
	next(ctx)
}
