package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
)

// Disk use: GET /projects/{projectId} reports one project's, GET /usage
// every project of the token's org. Both measure the same way: the blobs
// that the retained deployments refer to (libra.ReferencedBlobs), each
// distinct blob once.

// projectUsage measures what a project's retained deployments hold. It also
// returns each blob they refer to with its size, so that a caller adding up
// several projects can count a blob they share once.
func (s *server) projectUsage(ctx context.Context, projectID string) (ProjectUsage, map[string]int64, error) {
	var refs []libra.DeploymentRefs
	if err := s.cfg.Store.EachDeploymentRefs(ctx, projectID, func(r libra.DeploymentRefs) error {
		refs = append(refs, r)
		return nil
	}); err != nil {
		return ProjectUsage{}, nil, clientError(ctx, "load references", fmt.Errorf("references of %s: %w", projectID, err))
	}
	sizes, err := libra.ReferencedBlobs(ctx, s.cfg.Artifacts, refs, nil)
	if err != nil {
		return ProjectUsage{}, nil, clientError(ctx, "measure usage", fmt.Errorf("usage of %s: %w", projectID, err))
	}
	usage := ProjectUsage{Deployments: len(refs)}
	for _, size := range sizes {
		usage.Files++
		usage.Bytes += size
	}
	return usage, sizes, nil
}

// ProjectUsageItem is one project's line in an org's usage.
type ProjectUsageItem struct {
	ProjectID   string `json:"projectId"`
	Deployments int    `json:"deployments" doc:"Retained deployments, in every status."`
	Files       int    `json:"files" doc:"Distinct stored blobs that they refer to: sources, published files and manifests."`
	Bytes       int64  `json:"bytes" doc:"Their total size. A blob shared with another project counts in both."`
}

// UsageTotal is what all of an org's projects hold together.
type UsageTotal struct {
	Deployments int   `json:"deployments" doc:"Retained deployments of all the org's projects."`
	Files       int   `json:"files" doc:"Distinct stored blobs that they refer to; a blob that several projects share counts once."`
	Bytes       int64 `json:"bytes" doc:"The total size of those blobs, each counted once."`
}

// OrgUsage is the storage an org's retained deployments use.
type OrgUsage struct {
	OrgID    string             `json:"orgId" doc:"The token's org."`
	Projects []ProjectUsageItem `json:"projects" doc:"Every project of the org, by id, including those with no deployments."`
	Uploaded UsageTotal         `json:"uploaded" doc:"Files uploaded with PUT /files/{sha256} that no retained deployment uses (yet); deployments is always 0. Included in total."`
	Total    UsageTotal         `json:"total"`
}

type orgUsageOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         OrgUsage
}

func (s *server) getUsage(ctx context.Context, _ *struct{}) (*orgUsageOutput, error) {
	org := tokenOf(ctx).OrgID
	projects, err := s.cfg.Store.ListProjects(ctx, org)
	if err != nil {
		return nil, clientError(ctx, "list projects", fmt.Errorf("projects of org %s: %w", org, err))
	}
	out := OrgUsage{OrgID: org, Projects: make([]ProjectUsageItem, 0, len(projects))}
	all := map[string]int64{}
	for _, p := range projects {
		u, sizes, err := s.projectUsage(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		out.Projects = append(out.Projects, ProjectUsageItem{ProjectID: p.ID, Deployments: u.Deployments, Files: u.Files, Bytes: u.Bytes})
		out.Total.Deployments += u.Deployments
		for digest, size := range sizes {
			all[digest] = size
		}
	}
	if err := s.addUploads(ctx, org, all, &out.Uploaded); err != nil {
		return nil, err
	}
	for _, size := range all {
		out.Total.Files++
		out.Total.Bytes += size
	}
	return &orgUsageOutput{CacheControl: "no-store", Body: out}, nil
}

// registerUsage adds the routes of this file.
func (s *server) registerUsage(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "getUsage",
		Method:      http.MethodGet,
		Path:        "/usage",
		Summary:     "Get the org's disk use",
		Description: "The storage that the retained deployments of each of the token's org's projects use, and the org's total, " +
			"in which a blob that several projects share counts once.",
		Tags:        []string{"Projects"},
		Security:    tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate},
		Errors:      []int{401, 429},
	}, s.getUsage)
}
