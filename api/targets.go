package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
)

// Deployment targets, promote and stable aliases (issue 11; libra's
// targets.go has the rules).

// checkTarget validates a deploy request's target and alias; it returns
// the target, production when none was given.
func checkTarget(req *DeployRequest) (libra.Target, *ErrorResponse) {
	var p problems
	target, err := libra.ParseTarget(req.Target)
	if err != nil {
		p.invalid("target", "%v", err)
	}
	if target == libra.TargetPreview && req.CustomDomain != "" {
		p.invalid("customDomain", "a preview deployment does not go live on custom domains; deploy to production, or promote the preview")
	}
	if req.Alias != "" {
		if _, err := libra.CheckAlias(req.Alias, req.ProjectID); err != nil {
			p.invalid("alias", "%v", err)
		}
	}
	return target, p.err()
}

// stableAliasURL is the URL of a deployment's stable alias, "" when it has none.
func (s *server) stableAliasURL(projectID, alias string) string {
	host, ok := libra.ProjectHost(projectID)
	if alias == "" || !ok || s.cfg.SiteURL == nil {
		return ""
	}
	return s.cfg.SiteURL(libra.AliasLabel(alias, host))
}

// targetOf reads a stored target; rows from before targets existed are
// production.
func targetOf(t libra.Target) libra.Target {
	if t == "" {
		return libra.TargetProduction
	}
	return t
}

type promoteOutput struct {
	Body RollbackResult
}

// promote makes a completed deployment its project's production deployment
// through the rollback path, which also raises the newest-wins mark so that
// an older deployment that publishes later does not take production back.
func (s *server) promote(ctx context.Context, in *deploymentPath) (*promoteOutput, error) {
	d, err := s.orgDeployment(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Store.Project(ctx, d.ProjectID)
	if err != nil {
		return nil, clientError(ctx, "load project", fmt.Errorf("project %s: %w", d.ProjectID, err))
	}
	if err := s.cfg.Store.Rollback(ctx, p.ID, d.ID); err != nil {
		return nil, clientError(ctx, "promote", fmt.Errorf("promote %s in %s: %w", d.ID, p.ID, err))
	}
	s.invalidate(p.ID)
	loggerFrom(ctx).Info("deployment promoted", "project_id", p.ID, "deployment_id", d.ID, "previous", p.Current)
	return &promoteOutput{Body: RollbackResult{
		Success: true, ProjectID: p.ID, DeploymentID: d.ID, PreviousDeploymentID: p.Current, URL: s.aliasURL(p.ID),
		Message: "production now serves deployment " + d.ID, Timestamp: libra.Now(),
	}}, nil
}

// orgDeployment loads a deployment of the token's org. Another org's
// deployment is reported like a missing one: its id says nothing then.
func (s *server) orgDeployment(ctx context.Context, id string) (*libra.Deployment, error) {
	notFound := newError(http.StatusNotFound, libra.CodeDeploymentNotFound, "deployment not found", nil)
	if !libra.LooksLikeDeploymentID(id) {
		return nil, notFound
	}
	d, err := s.cfg.Store.Deployment(ctx, id)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, clientError(ctx, "load deployment", fmt.Errorf("deployment %s: %w", id, err))
	}
	if d.OrgID != tokenOf(ctx).OrgID {
		return nil, notFound
	}
	return d, nil
}

func (s *server) registerTargets(api huma.API) {
	authed := huma.Middlewares{s.authenticate}
	huma.Register(api, huma.Operation{
		OperationID: "promoteDeployment",
		Method:      http.MethodPost,
		Path:        "/deployments/{deploymentId}/promote",
		Summary:     "Make a deployment production",
		Description: "Points the project's production alias (and custom domains) at a completed deployment, typically a " +
			"preview, atomically. A deployment accepted before it that completes later does not take production back; " +
			"the next newer production deployment does. 409 when the deployment is not completed; 404 for an unknown " +
			"deployment or another org's.",
		Tags:        []string{"Deployments"},
		Security:    tokenSecurity,
		Middlewares: authed,
		Errors:      []int{401, 404, 409, 429},
	}, s.promote)
}
