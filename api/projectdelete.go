package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
)

// deleteProject removes a project of the caller's org with its deployments,
// domains and settings. Its blobs stay until garbage collection finds them
// unreferenced (after GC_GRACE).
func (s *server) deleteProject(ctx context.Context, in *projectPath) (*deletedOutput, error) {
	p, err := s.ownProject(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	del, err := s.cfg.Store.DeleteProject(ctx, p.OrgID, p.ID)
	if err != nil {
		return nil, clientError(ctx, "delete project", fmt.Errorf("delete project %s: %w", p.ID, err))
	}
	// The alias and the custom domains are cached under the project's
	// host, each deployment under its own label.
	s.invalidate(p.ID)
	for _, label := range del.SiteLabels {
		s.invalidate(label)
	}
	loggerFrom(ctx).Info("project deleted", "project_id", p.ID, "deployments", len(del.SiteLabels), "domains", len(del.Domains))
	msg := fmt.Sprintf("project %s deleted with %d deployment(s) and %d domain(s)", p.ID, len(del.SiteLabels), len(del.Domains))
	return &deletedOutput{Body: Deleted{Success: true, Message: msg, Timestamp: libra.Now()}}, nil
}

// registerProjectDelete adds the route of this file.
func (s *server) registerProjectDelete(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "deleteProject",
		Method:      http.MethodDelete,
		Path:        "/projects/{projectId}",
		Summary:     "Delete a project",
		Description: "Removes the project, all its deployments and their logs, its custom domains (free again at once) and " +
			"its settings; its sites stop serving. The files go at the next garbage collection. 409 while a deployment " +
			"of the project is queued or running. The id can be used again by a new project, which serves nothing of the old one.",
		Tags:        []string{"Projects"},
		Security:    tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate},
		Errors:      []int{401, 403, 404, 409, 429},
	}, s.deleteProject)
}
