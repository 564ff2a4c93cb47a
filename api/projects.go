package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/dnsverify"
)

// Releases: a project, its deployments, its production alias (and rollback),
// deleting a deployment, and custom domains. Every route needs a token of the
// project's org: another org's project is 403, an unknown one 404.

// ownProject loads a project that the request's token may manage.
func (s *server) ownProject(ctx context.Context, projectID string) (*libra.Project, error) {
	p, err := s.cfg.Store.Project(ctx, projectID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, newError(http.StatusNotFound, libra.CodeProjectNotFound, fmt.Sprintf("project %q not found", projectID), nil)
	}
	if err != nil {
		return nil, clientError(ctx, "load project", fmt.Errorf("project %s: %w", projectID, err))
	}
	if p.OrgID != tokenOf(ctx).OrgID {
		// 403 rather than 404, as POST /deploy answers: project ids are
		// names people choose, not secrets.
		return nil, newError(http.StatusForbidden, libra.CodeForbidden, fmt.Sprintf("project %q belongs to another org", projectID), nil)
	}
	return p, nil
}

// invalidate tells the site host that what label serves has changed.
func (s *server) invalidate(label string) {
	if s.cfg.Invalidate != nil {
		s.cfg.Invalidate(strings.ToLower(label))
	}
}

// aliasURL is the project's production URL, "" when its id cannot be a host
// name label (such a project is reachable through its custom domains only).
func (s *server) aliasURL(projectID string) string {
	label, ok := libra.ProjectHost(projectID)
	if s.cfg.SiteURL == nil || !ok {
		return ""
	}
	return s.cfg.SiteURL(label)
}

// DeploymentItem is one deployment in a list.
type DeploymentItem struct {
	ID         string       `json:"id"`
	Status     libra.Status `json:"status" enum:"queued,in_progress,completed,failed,cancelled"`
	CreatedAt  time.Time    `json:"createdAt"`
	StartedAt  *time.Time   `json:"startedAt,omitempty"`
	FinishedAt *time.Time   `json:"finishedAt,omitempty"`
	URL        string       `json:"url,omitempty" doc:"The deployment's own immutable URL, once it is published."`
	Production bool         `json:"production" doc:"Whether the project's production alias serves this deployment."`
	Error      string       `json:"error,omitempty"`
	Target     libra.Target `json:"target" enum:"production,preview" doc:"production or preview (see POST /deploy)."`
	Alias      string       `json:"alias,omitempty" doc:"Its stable alias name, when it was deployed with one."`
}

func deploymentItem(d libra.DeploymentInfo) DeploymentItem {
	return DeploymentItem{ID: d.ID, Status: d.Status, CreatedAt: d.CreatedAt, StartedAt: d.StartedAt,
		FinishedAt: d.FinishedAt, URL: d.URL, Production: d.Production, Error: d.Error,
		Target: targetOf(d.Target), Alias: d.Alias}
}

// Domain states.
const (
	DomainPending  = "pending"
	DomainVerified = "verified"
)

// DomainItem is a custom domain of a project.
type DomainItem struct {
	Domain       string             `json:"domain"`
	Status       string             `json:"status" enum:"pending,verified" doc:"A pending domain is not served and gets no certificate until its DNS TXT record is verified."`
	CreatedAt    time.Time          `json:"createdAt"`
	VerifiedAt   *time.Time         `json:"verifiedAt,omitempty" doc:"When ownership was verified."`
	CheckedAt    *time.Time         `json:"lastCheckedAt,omitempty" doc:"When the DNS record was last checked."`
	CheckError   string             `json:"lastCheckError,omitempty" doc:"Why the last check did not verify the domain."`
	Verification DomainVerification `json:"verification" doc:"The DNS record that proves ownership."`
	// Target is set when the deploy target keeps its own state of the
	// domain (DEPLOY_TARGET=cloudflare).
	Target *libra.TargetDomain `json:"target,omitempty" doc:"The domain as the deploy target reports it (Cloudflare), read when asked."`
}

// DomainVerification is the DNS record that verifies a custom domain.
type DomainVerification struct {
	Type  string `json:"type" enum:"TXT"`
	Name  string `json:"name" doc:"_libra-deploy.{domain}"`
	Value string `json:"value" doc:"The project's verification token."`
}

func domainItem(d libra.Domain, token string) DomainItem {
	item := DomainItem{Domain: d.Domain, Status: DomainPending, CreatedAt: d.CreatedAt, VerifiedAt: d.VerifiedAt,
		CheckedAt: d.CheckedAt, CheckError: d.CheckError,
		Verification: DomainVerification{Type: "TXT", Name: dnsverify.RecordName(d.Domain), Value: token}}
	if d.VerifiedAt != nil {
		item.Status = DomainVerified
	}
	return item
}

// ProjectUsage is the storage a project's retained deployments use.
type ProjectUsage struct {
	Deployments int   `json:"deployments" doc:"Retained deployments, in every status."`
	Files       int   `json:"files" doc:"Distinct stored blobs that they refer to: sources, published files and manifests."`
	Bytes       int64 `json:"bytes" doc:"Their total size. A blob shared with another project counts in both."`
}

// ProjectDetail is a project with its production deployment, domains and
// storage use.
type ProjectDetail struct {
	ID                string          `json:"id"`
	OrgID             string          `json:"orgId"`
	Name              string          `json:"name"`
	CreatedAt         time.Time       `json:"createdAt"`
	CurrentDeployment string          `json:"currentDeployment,omitempty" doc:"The deployment its production alias serves."`
	URL               string          `json:"url,omitempty" doc:"The production alias, http(s)://{projectId}.{sites domain}/."`
	Production        *DeploymentItem `json:"production" doc:"The deployment the alias serves; null before the first successful deployment."`
	Pinned            bool            `json:"pinned" doc:"A rollback made production older than the newest published deployment; the next deployment that completes moves it forward again."`
	Domains           []DomainItem    `json:"domains"`
	Usage             ProjectUsage    `json:"usage"`
}

type projectPath struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
}

type projectDetailOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         ProjectDetail
}

func (s *server) getProject(ctx context.Context, in *projectPath) (*projectDetailOutput, error) {
	p, err := s.ownProject(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	rel, err := s.cfg.Store.ProjectRelease(ctx, p.ID)
	if err != nil {
		return nil, clientError(ctx, "load release", fmt.Errorf("release of %s: %w", p.ID, err))
	}
	domains, err := s.domains(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	usage, _, err := s.projectUsage(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	out := ProjectDetail{ID: p.ID, OrgID: p.OrgID, Name: p.Name, CreatedAt: p.CreatedAt, URL: s.aliasURL(p.ID),
		Pinned: rel.Pinned, Domains: domains, Usage: usage}
	if rel.Production != nil {
		item := deploymentItem(*rel.Production)
		out.Production = &item
		out.CurrentDeployment = item.ID
	}
	return &projectDetailOutput{CacheControl: "no-store", Body: out}, nil
}

type listDeploymentsInput struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
	Limit     int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"Page size."`
	Cursor    string `query:"cursor" maxLength:"40" doc:"nextCursor of the previous page; absent for the first page."`
}

// DeploymentList is one page of a project's deployments, newest first.
type DeploymentList struct {
	ProjectID   string           `json:"projectId"`
	Deployments []DeploymentItem `json:"deployments"`
	Total       int              `json:"total" doc:"Retained deployments of the project, all pages together."`
	NextCursor  string           `json:"nextCursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page."`
}

type listDeploymentsOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         DeploymentList
}

func (s *server) listDeployments(ctx context.Context, in *listDeploymentsInput) (*listDeploymentsOutput, error) {
	p, err := s.ownProject(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	page, err := s.cfg.Store.ListDeployments(ctx, p.ID, in.Cursor, in.Limit)
	if err != nil {
		return nil, clientError(ctx, "list deployments", fmt.Errorf("deployments of %s: %w", p.ID, err))
	}
	out := DeploymentList{ProjectID: p.ID, Deployments: make([]DeploymentItem, len(page.Deployments)),
		Total: page.Total, NextCursor: page.Next}
	for i, d := range page.Deployments {
		out.Deployments[i] = deploymentItem(d)
	}
	return &listDeploymentsOutput{CacheControl: "no-store", Body: out}, nil
}

// RollbackRequest is the body of POST /projects/{projectId}/rollback.
type RollbackRequest struct {
	DeploymentID string `json:"deploymentId" minLength:"1" maxLength:"64" doc:"A completed, retained deployment of the project."`
}

type rollbackInput struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
	Body      RollbackRequest
}

// RollbackResult says what production serves now.
type RollbackResult struct {
	Success              bool      `json:"success"`
	ProjectID            string    `json:"projectId"`
	DeploymentID         string    `json:"deploymentId" doc:"The deployment production serves now."`
	PreviousDeploymentID string    `json:"previousDeploymentId,omitempty" doc:"The deployment it served before."`
	URL                  string    `json:"url,omitempty" doc:"The production alias."`
	Message              string    `json:"message"`
	Timestamp            time.Time `json:"timestamp"`
}

type rollbackOutput struct {
	Body RollbackResult
}

func (s *server) rollback(ctx context.Context, in *rollbackInput) (*rollbackOutput, error) {
	p, err := s.ownProject(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	id := in.Body.DeploymentID
	if !libra.LooksLikeDeploymentID(id) {
		return nil, newError(http.StatusNotFound, libra.CodeDeploymentNotFound,
			fmt.Sprintf("project %s has no deployment %.64q", p.ID, id), nil)
	}
	if s.cfg.Republish != nil {
		if err := s.cfg.Republish(ctx, p.ID, id); err != nil {
			return nil, clientError(ctx, "rollback", fmt.Errorf("republish %s: %w", id, err))
		}
	}
	if err := s.cfg.Store.Rollback(ctx, p.ID, id); err != nil {
		return nil, clientError(ctx, "rollback", fmt.Errorf("roll %s back to %s: %w", p.ID, id, err))
	}
	s.invalidate(p.ID)
	loggerFrom(ctx).Info("production rolled back", "project_id", p.ID, "deployment_id", id, "previous", p.Current)
	return &rollbackOutput{Body: RollbackResult{
		Success: true, ProjectID: p.ID, DeploymentID: id, PreviousDeploymentID: p.Current, URL: s.aliasURL(p.ID),
		Message: "production now serves deployment " + id, Timestamp: libra.Now(),
	}}, nil
}

type deploymentPath struct {
	ID string `path:"deploymentId" maxLength:"64" doc:"The deployment's id."`
}

// Deleted confirms a deletion.
type Deleted struct {
	Success   bool      `json:"success"`
	Message   string    `json:"message"`
	Timestamp time.Time `json:"timestamp"`
}

type deletedOutput struct {
	Body Deleted
}

func (s *server) deleteDeployment(ctx context.Context, in *deploymentPath) (*deletedOutput, error) {
	notFound := newError(http.StatusNotFound, libra.CodeDeploymentNotFound, "deployment not found", nil)
	if !libra.LooksLikeDeploymentID(in.ID) {
		return nil, notFound
	}
	d, err := s.cfg.Store.Deployment(ctx, in.ID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, clientError(ctx, "load deployment", fmt.Errorf("deployment %s: %w", in.ID, err))
	}
	if _, err := s.ownProject(ctx, d.ProjectID); err != nil {
		var e *ErrorResponse
		if errors.As(err, &e) && e.Code == libra.CodeForbidden {
			return nil, newError(http.StatusForbidden, libra.CodeForbidden, "deployment belongs to another org", nil)
		}
		return nil, err
	}
	if err := s.cfg.Store.DeleteDeployment(ctx, d.ID); err != nil {
		return nil, clientError(ctx, "delete deployment", fmt.Errorf("delete %s: %w", d.ID, err))
	}
	s.invalidate(d.SiteLabel)
	if d.Alias != "" {
		// Its stable alias may fall back to an older deployment.
		s.invalidate(d.ProjectID)
	}
	loggerFrom(ctx).Info("deployment deleted", "deployment_id", d.ID, "project_id", d.ProjectID)
	return &deletedOutput{Body: Deleted{Success: true, Message: "deployment " + d.ID + " deleted", Timestamp: libra.Now()}}, nil
}

// DomainList is a project's custom domains.
type DomainList struct {
	ProjectID         string       `json:"projectId"`
	VerificationToken string       `json:"verificationToken" doc:"Put this in a TXT record _libra-deploy.{domain} to verify each domain."`
	Domains           []DomainItem `json:"domains"`
}

type domainListOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         DomainList
}

// domainToken returns the project's verification token, made on first use.
func (s *server) domainToken(ctx context.Context, projectID string) (string, error) {
	token, err := s.cfg.Store.DomainToken(ctx, projectID)
	if err != nil {
		return "", clientError(ctx, "domain token", fmt.Errorf("domain token of %s: %w", projectID, err))
	}
	return token, nil
}

func (s *server) domains(ctx context.Context, projectID string) ([]DomainItem, error) {
	ds, err := s.cfg.Store.Domains(ctx, projectID)
	if err != nil {
		return nil, clientError(ctx, "list domains", fmt.Errorf("domains of %s: %w", projectID, err))
	}
	out := make([]DomainItem, len(ds))
	if len(ds) == 0 {
		return out, nil
	}
	token, err := s.domainToken(ctx, projectID)
	if err != nil {
		return nil, err
	}
	for i, d := range ds {
		out[i] = domainItem(d, token)
	}
	s.addTargetStates(ctx, projectID, out)
	return out, nil
}

func (s *server) listDomains(ctx context.Context, in *projectPath) (*domainListOutput, error) {
	p, err := s.ownProject(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	ds, err := s.domains(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	token, err := s.domainToken(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return &domainListOutput{CacheControl: "no-store", Body: DomainList{ProjectID: p.ID, VerificationToken: token, Domains: ds}}, nil
}

// domainState returns one of the project's domains as the API shows it,
// nil when the project lacks it.
func (s *server) domainState(ctx context.Context, projectID, domain string) (*DomainItem, error) {
	ds, err := s.domains(ctx, projectID)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		if ds[i].Domain == domain {
			return &ds[i], nil
		}
	}
	return nil, nil
}

// DomainRequest is the body of POST /projects/{projectId}/domains.
type DomainRequest struct {
	Domain string `json:"domain" minLength:"1" maxLength:"253" doc:"A host name, e.g. www.example.com. Not an IP address, localhost, an API host name, or under the sites domain."`
}

type addDomainInput struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
	Body      DomainRequest
}

// DomainAdded confirms a domain is attached.
type DomainAdded struct {
	Success   bool   `json:"success"`
	ProjectID string `json:"projectId"`
	// DomainItem's domain is the domain as stored: lower case, no
	// trailing dot.
	DomainItem
	VerificationToken string    `json:"verificationToken" doc:"The project's token, which the TXT record must hold."`
	Message           string    `json:"message"`
	Timestamp         time.Time `json:"timestamp"`
}

type domainAddedOutput struct {
	Status int
	Body   DomainAdded
}

func (s *server) addDomain(ctx context.Context, in *addDomainInput) (*domainAddedOutput, error) {
	p, err := s.ownProject(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	if err := s.hosts.CheckCustomDomain(in.Body.Domain); err != nil {
		return nil, newError(http.StatusBadRequest, libra.CodeValidation, "domain "+err.Error(),
			[]FieldError{{Field: "domain", Message: err.Error()}})
	}
	domain := libra.NormalizeDomain(in.Body.Domain)
	added, err := s.cfg.Store.AddDomain(ctx, p.ID, domain)
	if err != nil {
		return nil, clientError(ctx, "add domain", fmt.Errorf("add %s to %s: %w", domain, p.ID, err))
	}
	item, err := s.domainState(ctx, p.ID, domain)
	if err != nil {
		return nil, err
	}
	if item == nil {
		// Detached by a concurrent request between the two statements.
		return nil, newError(http.StatusConflict, libra.CodeConflict, "domain "+domain+" was detached meanwhile; try again", nil)
	}
	out := &domainAddedOutput{Status: http.StatusOK, Body: DomainAdded{Success: true, ProjectID: p.ID,
		DomainItem: *item, VerificationToken: item.Verification.Value,
		Message: "domain " + domain + " was already attached", Timestamp: libra.Now()}}
	if added {
		out.Status = http.StatusCreated
		out.Body.Message = "domain " + domain + " attached, pending verification: create a TXT record " +
			item.Verification.Name + " holding the verificationToken, then POST /projects/" + p.ID + "/domains/" +
			domain + "/verify"
	}
	return out, nil
}

type domainPath struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
	Domain    string `path:"domain" maxLength:"253" doc:"The custom domain."`
}

func (s *server) removeDomain(ctx context.Context, in *domainPath) (*deletedOutput, error) {
	p, err := s.ownProject(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	domain := libra.NormalizeDomain(in.Domain)
	if err := s.cfg.Store.RemoveDomain(ctx, p.ID, domain); err != nil {
		return nil, clientError(ctx, "remove domain", fmt.Errorf("remove %s from %s: %w", domain, p.ID, err))
	}
	s.invalidate(p.ID)
	return &deletedOutput{Body: Deleted{Success: true, Message: "domain " + domain + " detached", Timestamp: libra.Now()}}, nil
}

// DomainCheckResult is the answer of a verification: the domain's new state.
type DomainCheckResult struct {
	Success   bool   `json:"success" doc:"The check ran; whether it verified the domain is in verified."`
	ProjectID string `json:"projectId"`
	Verified  bool   `json:"verified"`
	Reason    string `json:"reason,omitempty" doc:"Why the domain is not verified: the TXT record is missing or wrong, or the lookup failed."`
	DomainItem
	Message   string    `json:"message"`
	Timestamp time.Time `json:"timestamp"`
}

type domainVerifiedOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         DomainCheckResult
}

func (s *server) verifyDomain(ctx context.Context, in *domainPath) (*domainVerifiedOutput, error) {
	p, err := s.ownProject(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	if s.cfg.VerifyDomain == nil {
		return nil, newError(http.StatusServiceUnavailable, libra.CodeUnavailable, "domain verification is not configured", nil)
	}
	domain := libra.NormalizeDomain(in.Domain)
	before, err := s.domainState(ctx, p.ID, domain)
	if err != nil {
		return nil, err
	}
	if before == nil {
		return nil, newError(http.StatusNotFound, libra.CodeNotFound, fmt.Sprintf("project %s has no domain %.253q", p.ID, domain), nil)
	}
	check := s.cfg.VerifyDomain(ctx, domain, before.Verification.Value)
	d, err := s.cfg.Store.RecordDomainCheck(ctx, p.ID, domain, check)
	if err != nil {
		return nil, clientError(ctx, "record domain check", fmt.Errorf("check of %s: %w", domain, err))
	}
	item := domainItem(*d, before.Verification.Value)
	if item.Status != before.Status {
		s.invalidate(p.ID)
		loggerFrom(ctx).Info("custom domain "+item.Status, "project_id", p.ID, "domain", domain)
	}
	out := DomainCheckResult{Success: true, ProjectID: p.ID, Verified: check.Verified, Reason: check.Reason,
		DomainItem: item, Timestamp: libra.Now()}
	out.Message = "domain " + domain + " is " + item.Status
	if !check.Verified {
		out.Message += ": " + check.Reason
	}
	return &domainVerifiedOutput{CacheControl: "no-store", Body: out}, nil
}

// registerReleases adds the routes of this file.
func (s *server) registerReleases(api huma.API) {
	// Routes without a body skip requireJSON: it refuses a request that
	// sends no Content-Type, which a GET or DELETE rightly does not.
	authed := huma.Middlewares{s.authenticate}
	withBody := huma.Middlewares{s.authenticate, requireJSON}
	auth := []int{401, 403, 404, 429}

	huma.Register(api, huma.Operation{
		OperationID: "getProject",
		Method:      http.MethodGet,
		Path:        "/projects/{projectId}",
		Summary:     "Get a project",
		Description: "The project with its production deployment, custom domains and the storage its retained deployments use.",
		Tags:        []string{"Projects"},
		Security:    tokenSecurity,
		Middlewares: authed,
		Errors:      auth,
	}, s.getProject)

	huma.Register(api, huma.Operation{
		OperationID: "listDeployments",
		Method:      http.MethodGet,
		Path:        "/projects/{projectId}/deployments",
		Summary:     "List a project's deployments",
		Description: "Retained deployments, newest first, in pages: pass nextCursor as cursor for the next page. " +
			"Each says whether the production alias serves it.",
		Tags:        []string{"Projects"},
		Security:    tokenSecurity,
		Middlewares: authed,
		Errors:      append([]int{400}, auth...),
	}, s.listDeployments)

	huma.Register(api, huma.Operation{
		OperationID: "rollback",
		Method:      http.MethodPost,
		Path:        "/projects/{projectId}/rollback",
		Summary:     "Point production at an earlier deployment",
		Description: "Switches the production alias (and custom domains) to a completed, retained deployment of the project, " +
			"atomically. The next deployment that completes moves production forward again.",
		Tags:        []string{"Projects"},
		Security:    tokenSecurity,
		Middlewares: withBody,
		Errors:      append([]int{400, 409, 415}, auth...),
	}, s.rollback)

	huma.Register(api, huma.Operation{
		OperationID: "deleteDeployment",
		Method:      http.MethodDelete,
		Path:        "/deployments/{deploymentId}",
		Summary:     "Delete a deployment",
		Description: "Removes a finished deployment, its logs and its immutable URL; its files go at the next garbage collection. " +
			"The production deployment cannot be deleted (409): roll back to another first.",
		Tags:        []string{"Deployments"},
		Security:    tokenSecurity,
		Middlewares: authed,
		Errors:      append([]int{409}, auth...),
	}, s.deleteDeployment)

	huma.Register(api, huma.Operation{
		OperationID: "listDomains",
		Method:      http.MethodGet,
		Path:        "/projects/{projectId}/domains",
		Summary:     "List a project's custom domains",
		Description: "The custom domains attached to the project, which serve its production alias.",
		Tags:        []string{"Domains"},
		Security:    tokenSecurity,
		Middlewares: authed,
		Errors:      auth,
	}, s.listDomains)

	huma.Register(api, huma.Operation{
		OperationID: "addDomain",
		Method:      http.MethodPost,
		Path:        "/projects/{projectId}/domains",
		Summary:     "Attach a custom domain",
		Description: "The domain is attached pending: it serves the project's production deployment once the TXT record " +
			"_libra-deploy.{domain} holds the project's verification token (in the answer) and verification ran. " +
			"201 when attached, 200 when it already was; 400 for names that are reserved (the API's host names, the sites " +
			"domain and names under it, IP addresses, localhost); 409 DOMAIN_TAKEN when another project has it.",
		Tags:          []string{"Domains"},
		DefaultStatus: http.StatusCreated,
		Responses: map[string]*huma.Response{"200": {
			Description: "The domain was already attached to this project; nothing changed.",
			Content:     map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Ref: "#/components/schemas/DomainAdded"}}},
		}},
		Security:    tokenSecurity,
		Middlewares: withBody,
		Errors:      append([]int{400, 409, 415}, auth...),
	}, s.addDomain)

	huma.Register(api, huma.Operation{
		OperationID: "removeDomain",
		Method:      http.MethodDelete,
		Path:        "/projects/{projectId}/domains/{domain}",
		Summary:     "Detach a custom domain",
		Description: "Stops serving the project on the domain; another project may then attach it.",
		Tags:        []string{"Domains"},
		Security:    tokenSecurity,
		Middlewares: authed,
		Errors:      auth,
	}, s.removeDomain)

	huma.Register(api, huma.Operation{
		OperationID: "verifyDomain",
		Method:      http.MethodPost,
		Path:        "/projects/{projectId}/domains/{domain}/verify",
		Summary:     "Verify a custom domain's DNS record",
		Description: "Looks up the TXT record _libra-deploy.{domain} now. When it holds the project's verification token " +
			"the domain becomes verified, is served and may get a certificate. Otherwise the answer is still 200, with " +
			"verified false, status pending and the reason; a verified domain whose record is gone becomes pending again. " +
			"A DNS lookup that fails (timeout, SERVFAIL) changes nothing.",
		Tags:        []string{"Domains"},
		Security:    tokenSecurity,
		Middlewares: authed,
		Errors:      append([]int{503}, auth...),
	}, s.verifyDomain)
}
