package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	libra "github.com/libra-deploy/libra-deploy"
)

// Routes about things that are nobody else's business (a project's
// environment and webhooks, a deployment's events, log, cancellation) load
// them here: another org's is 404, exactly like one that does not exist, so
// a token cannot learn which ids are real. Releases answer 403 instead
// (ownProject): project ids there are names people choose.

// projectOfOrg loads a project of the token's org.
func (s *server) projectOfOrg(ctx context.Context, projectID string) (*libra.Project, error) {
	p, err := s.cfg.Store.Project(ctx, projectID)
	if errors.Is(err, libra.ErrNotFound) || err == nil && p.OrgID != tokenOf(ctx).OrgID {
		return nil, newError(http.StatusNotFound, libra.CodeProjectNotFound, fmt.Sprintf("project %q not found", projectID), nil)
	}
	if err != nil {
		return nil, clientError(ctx, "load project", fmt.Errorf("project %s: %w", projectID, err))
	}
	return p, nil
}

// deploymentOfOrg loads a deployment of the token's org.
func (s *server) deploymentOfOrg(ctx context.Context, id string) (*libra.Deployment, error) {
	notFound := newError(http.StatusNotFound, libra.CodeDeploymentNotFound, "deployment not found", nil)
	if !libra.LooksLikeDeploymentID(id) {
		return nil, notFound
	}
	d, err := s.cfg.Store.Deployment(ctx, id)
	if errors.Is(err, libra.ErrNotFound) || err == nil && d.OrgID != tokenOf(ctx).OrgID {
		return nil, notFound
	}
	if err != nil {
		return nil, clientError(ctx, "load deployment", fmt.Errorf("deployment %s: %w", id, err))
	}
	return d, nil
}
