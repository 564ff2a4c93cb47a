package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// maxStatusLogs is how many of a deployment's latest log lines the status
// endpoint returns; clients poll it, so it must stay cheap.
const maxStatusLogs = 1000

type statusInput struct {
	ID string `query:"id" required:"true" doc:"The deploymentId returned by POST /deploy."`
}

type deployStatusInput struct {
	ID         string `query:"id" required:"true" doc:"The deploymentId returned by POST /deploy."`
	LogEntries bool   `query:"logEntries" doc:"Also return the log lines as objects {timestamp, step, level, message} in logEntries."`
}

// DeploymentSteps is the state of each of the six steps.
type DeploymentSteps struct {
	Validate libra.StepState `json:"validate"`
	Sync     libra.StepState `json:"sync"`
	Sandbox  libra.StepState `json:"sandbox"`
	Build    libra.StepState `json:"build"`
	Deploy   libra.StepState `json:"deploy"`
	Cleanup  libra.StepState `json:"cleanup"`
}

// DeploymentStatus is where a deployment stands.
type DeploymentStatus struct {
	DeploymentID string           `json:"deploymentId"`
	Status       libra.Status     `json:"status" enum:"queued,in_progress,completed,failed,cancelled"`
	CurrentStep  libra.Step       `json:"currentStep,omitempty" enum:"validate,sync,sandbox,build,deploy,cleanup"`
	Progress     int              `json:"progress" minimum:"0" maximum:"100" doc:"0 to 100; only moves forward."`
	Steps        DeploymentSteps  `json:"steps"`
	Logs         []string         `json:"logs" doc:"The latest log lines, oldest first (at most 1,000), as text: time (UTC), [step], a level when not info, the message; e.g. \"14:02:07 [build] vite v5.4.0 building for production...\"."`
	LogEntries   []libra.LogEntry `json:"logEntries,omitempty" doc:"The same lines as objects; only with logEntries=true."`
	Error        string           `json:"error,omitempty"`
	URL          string           `json:"url,omitempty" doc:"Where the deployment is live, once it is."`
	Target       libra.Target     `json:"target" enum:"production,preview" doc:"production: it goes live on the project's production alias when it completes; preview: only at its own URL until promoted."`
	Alias        string           `json:"alias,omitempty" doc:"Its stable alias name, when it was deployed with one."`
	AliasURL     string           `json:"aliasUrl,omitempty" doc:"The stable alias's URL, which serves the newest completed deployment with this alias."`
	Timestamp    time.Time        `json:"timestamp"`
}

type statusOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         DeploymentStatus
}

func stepState(s libra.StepStates, name libra.Step) libra.StepState {
	if st, ok := s[name]; ok {
		return st
	}
	return libra.StepState{Status: libra.StepPending}
}

// logLine is a log entry as the seed's clients show it: one line of text.
func logLine(e libra.LogEntry) string {
	var b strings.Builder
	b.WriteString(e.Time.UTC().Format("15:04:05"))
	if e.Step != "" {
		b.WriteString(" [" + string(e.Step) + "]")
	}
	if e.Level != "" && e.Level != "info" {
		b.WriteString(" " + strings.ToUpper(e.Level) + ":")
	}
	b.WriteString(" " + e.Message)
	return b.String()
}

func logLines(entries []libra.LogEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = logLine(e)
	}
	return out
}

func (s *server) deployStatus(ctx context.Context, in *deployStatusInput) (*statusOutput, error) {
	notFound := func() error {
		return newError(http.StatusNotFound, libra.CodeDeploymentNotFound, "deployment not found", nil)
	}
	// Ids that NewDeploymentID cannot have made are answered without a query.
	if !libra.LooksLikeDeploymentID(in.ID) {
		return nil, notFound()
	}
	d, err := s.cfg.Store.Deployment(ctx, in.ID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, notFound()
	}
	if err != nil {
		return nil, clientError(ctx, "load deployment", fmt.Errorf("deployment %s: %w", in.ID, err))
	}
	logs, err := s.cfg.Store.Logs(ctx, in.ID, maxStatusLogs)
	if err != nil {
		return nil, clientError(ctx, "load logs", fmt.Errorf("logs of %s: %w", in.ID, err))
	}
	var entries []libra.LogEntry
	if in.LogEntries {
		entries = logs
		if entries == nil {
			entries = []libra.LogEntry{}
		}
	}
	return &statusOutput{
		CacheControl: "no-store",
		Body: DeploymentStatus{
			DeploymentID: d.ID,
			Status:       d.Status,
			CurrentStep:  d.CurrentStep,
			Progress:     d.Progress,
			Steps: DeploymentSteps{
				Validate: stepState(d.Steps, libra.StepValidate),
				Sync:     stepState(d.Steps, libra.StepSync),
				Sandbox:  stepState(d.Steps, libra.StepSandbox),
				Build:    stepState(d.Steps, libra.StepBuild),
				Deploy:   stepState(d.Steps, libra.StepDeploy),
				Cleanup:  stepState(d.Steps, libra.StepCleanup),
			},
			Logs:       logLines(logs),
			LogEntries: entries,
			Error:      d.Error,
			URL:        d.URL,
			Target:     targetOf(d.Target),
			Alias:      d.Alias,
			AliasURL:   s.stableAliasURL(d.ProjectID, d.Alias),
			Timestamp:  libra.Now(),
		},
	}, nil
}

// ProjectRequest is the body of POST /projects.
type ProjectRequest struct {
	ID   string `json:"id" minLength:"1" maxLength:"128" pattern:"^[A-Za-z0-9._-]+$" doc:"The project id. Lowercase letters, digits and '-' (at most 63) also make it the project's host name label. It may not contain \"--\" (deployment host names use it) nor look like a deployment id."`
	Name string `json:"name,omitempty" maxLength:"200" doc:"Display name; the id when absent."`
}

type projectInput struct {
	Body ProjectRequest
}

// Project is a project as the API shows it.
type Project struct {
	ID                string    `json:"id"`
	OrgID             string    `json:"orgId"`
	Name              string    `json:"name"`
	CreatedAt         time.Time `json:"createdAt"`
	CurrentDeployment string    `json:"currentDeployment,omitempty" doc:"The deployment its production alias serves."`
}

type projectOutput struct {
	Body Project
}

func (s *server) createProject(ctx context.Context, in *projectInput) (*projectOutput, error) {
	tok := tokenOf(ctx)
	if err := libra.CheckProjectID(in.Body.ID); err != nil {
		return nil, newError(http.StatusBadRequest, libra.CodeValidation, "id: "+err.Error(),
			[]FieldError{{Field: "id", Message: err.Error()}})
	}
	exists := func() error {
		return newError(http.StatusConflict, libra.CodeProjectExists, fmt.Sprintf("project %q already exists", in.Body.ID), nil)
	}
	// Checked first for a clear answer; the store's unique key still
	// decides when two requests race.
	if _, err := s.cfg.Store.Project(ctx, in.Body.ID); err == nil {
		return nil, exists()
	} else if !errors.Is(err, libra.ErrNotFound) {
		return nil, clientError(ctx, "load project", fmt.Errorf("project %s: %w", in.Body.ID, err))
	}
	p := libra.Project{ID: in.Body.ID, OrgID: tok.OrgID, Name: in.Body.Name, CreatedAt: libra.Now()}
	if p.Name == "" {
		p.Name = p.ID
	}
	if err := s.cfg.Store.CreateProject(ctx, p); err != nil {
		return nil, clientError(ctx, "create project", fmt.Errorf("create project %s: %w", p.ID, err))
	}
	return &projectOutput{Body: Project{ID: p.ID, OrgID: p.OrgID, Name: p.Name, CreatedAt: p.CreatedAt}}, nil
}

// healthTimeout bounds each check, so /health answers even when a
// dependency hangs, and reports the hang.
const healthTimeout = 2 * time.Second

// Health is the answer of GET /health.
type Health struct {
	Status    string            `json:"status" enum:"healthy,unhealthy"`
	Timestamp time.Time         `json:"timestamp"`
	Service   string            `json:"service"`
	Version   string            `json:"version"`
	Uptime    int64             `json:"uptime" doc:"Milliseconds since the service started."`
	Checks    map[string]string `json:"checks" doc:"Each check's result, healthy or unhealthy; why one failed (or timed out) is in the server log."`
}

type healthOutput struct {
	Status       int
	CacheControl string `header:"Cache-Control"`
	Body         Health
}

func (s *server) health(ctx context.Context, _ *struct{}) (*healthOutput, error) {
	names := make([]string, 0, len(s.checks))
	for name := range s.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	results := make([]bool, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.runCheck(ctx, name, s.checks[name])
		}()
	}
	wg.Wait()

	out := &healthOutput{Status: http.StatusOK, CacheControl: "no-store", Body: Health{
		Status:    "healthy",
		Timestamp: libra.Now(),
		Service:   serviceName,
		Version:   s.cfg.Version,
		Uptime:    time.Since(s.cfg.StartedAt).Milliseconds(),
		Checks:    make(map[string]string, len(names)),
	}}
	for i, name := range names {
		out.Body.Checks[name] = checkHealthy
		if !results[i] {
			out.Body.Checks[name] = checkUnhealthy
		}
		if !results[i] && !s.info[name] {
			out.Status = http.StatusServiceUnavailable
			out.Body.Status = "unhealthy"
		}
	}
	return out, nil
}

// What /health says of each check: the seed's two words. Why a check
// failed stays in the log: it may name files, hosts or drivers that a
// public endpoint must not show.
const (
	checkHealthy   = "healthy"
	checkUnhealthy = "unhealthy"
)

// runCheck runs one check and reports whether it passed in time.
func (s *server) runCheck(ctx context.Context, name string, check func(context.Context) error) bool {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("check panicked: %v", v)
			}
		}()
		done <- check(ctx)
	}()
	select {
	case err := <-done:
		if err == nil {
			return true
		}
		loggerFrom(ctx).Warn("health check failed", "check", name, "error", err)
		return false
	case <-ctx.Done():
		loggerFrom(ctx).Warn("health check timed out", "check", name, "timeout", healthTimeout)
		return false
	}
}

const serviceName = "libra-deploy"

// ServiceInfo is the answer of GET /.
type ServiceInfo struct {
	Message      string    `json:"message"`
	Service      string    `json:"service"`
	Version      string    `json:"version"`
	Status       string    `json:"status"`
	Timestamp    time.Time `json:"timestamp"`
	Architecture string    `json:"architecture"`
	Description  string    `json:"description"`
	Endpoints    []string  `json:"endpoints"`
}

type rootOutput struct {
	Body ServiceInfo
}

var endpoints = []string{
	"POST /deploy",
	"GET /deploy-status?id={deploymentId}",
	"GET /deploy-log?id={deploymentId}",
	"GET /deployments/{deploymentId}/events",
	"POST /projects",
	"GET|DELETE /projects/{projectId}",
	"GET /projects/{projectId}/deployments",
	"POST /projects/{projectId}/rollback",
	"GET|POST /projects/{projectId}/domains",
	"DELETE /projects/{projectId}/domains/{domain}",
	"DELETE /deployments/{deploymentId}",
	"POST /deployments/{deploymentId}/cancel",
	"GET /usage",
	"GET /tokens",
	"DELETE /tokens/{tokenId}",
	"GET /health",
	"GET /openapi.json",
	"GET /docs",
}

func (s *server) root(ctx context.Context, _ *struct{}) (*rootOutput, error) {
	return &rootOutput{Body: ServiceInfo{
		Message:      "libra-deploy is running",
		Service:      serviceName,
		Version:      s.cfg.Version,
		Status:       "running",
		Timestamp:    libra.Now(),
		Architecture: "single Go binary: HTTP API, queue workers and site host in one process; state and queue in one database (SQLite or PostgreSQL, River); content-addressed artifact store (local disk or S3)",
		Description:  "Self-hosted deployment service: send a project's files, it builds them in an isolated sandbox through six steps (validate, sync, sandbox, build, deploy, cleanup) and publishes the result as a live site.",
		Endpoints:    endpoints,
	}}, nil
}
