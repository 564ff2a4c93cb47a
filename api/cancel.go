package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// CancelAccepted is the answer of POST /deployments/{id}/cancel.
type CancelAccepted struct {
	Success      bool         `json:"success"`
	DeploymentID string       `json:"deploymentId"`
	Status       libra.Status `json:"status" enum:"queued,in_progress,cancelled" doc:"cancelled when it had not started (it never will); otherwise the status it has while the node running it stops it."`
	Message      string       `json:"message"`
	Timestamp    time.Time    `json:"timestamp"`
}

type cancelOutput struct {
	Body CancelAccepted
}

// cancelDeployment asks for a deployment of the caller's org to stop.
// Another org's deployment is 404, as if it did not exist: deployment ids
// are secrets (GET /deploy-status needs none).
func (s *server) cancelDeployment(ctx context.Context, in *deploymentPath) (*cancelOutput, error) {
	d, err := s.deploymentOfOrg(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	status, err := s.cfg.Store.RequestCancel(ctx, d.ID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, newError(http.StatusNotFound, libra.CodeDeploymentNotFound, "deployment not found", nil) // deleted meanwhile
	}
	if err != nil {
		return nil, clientError(ctx, "cancel deployment", fmt.Errorf("cancel %s: %w", d.ID, err))
	}
	msg := "cancellation requested: the node running the deployment stops its build, cleans up and ends it cancelled, " +
		"unless it publishes or fails first"
	if status == libra.StatusCancelled {
		msg = "deployment cancelled: it had not started and never will"
		metrics.DeploymentFinished(string(status))
	}
	loggerFrom(ctx).Info("deployment cancel requested", "deployment_id", d.ID, "project_id", d.ProjectID, "status", status)
	return &cancelOutput{Body: CancelAccepted{Success: true, DeploymentID: d.ID, Status: status, Message: msg,
		Timestamp: libra.Now()}}, nil
}

// registerCancel adds the route of this file.
func (s *server) registerCancel(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID:   "cancelDeployment",
		Method:        http.MethodPost,
		Path:          "/deployments/{deploymentId}/cancel",
		Summary:       "Cancel a deployment",
		DefaultStatus: http.StatusAccepted,
		Description: "A queued deployment never starts: it is cancelled at once and its quota given back. A running one, " +
			"on whichever node, has its build's processes killed and its sandbox destroyed within about a second; its " +
			"cleanup step runs and it ends `cancelled`. The quota comes back only if its build step had not begun. " +
			"409 DEPLOYMENT_FINISHED when it is already final or has published (a published deployment completes). " +
			"Another org's deployment is 404.",
		Tags:        []string{"Deployments"},
		Security:    tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate},
		Errors:      []int{401, 404, 409, 429},
	}, s.cancelDeployment)
}
