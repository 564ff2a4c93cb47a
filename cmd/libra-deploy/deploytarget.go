package main

import (
	"context"
	"fmt"
	"os"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/deploytarget/cloudflare"
	"github.com/libra-deploy/libra-deploy/workflow"
)

// deployTarget reads DEPLOY_TARGET: "local" (the default) serves sites
// from this service; "cloudflare" publishes each project as a Worker.
func deployTarget() (libra.DeployTarget, error) {
	switch t := env("DEPLOY_TARGET", "local"); t {
	case "local":
		return nil, nil
	case "cloudflare":
		stateTTL, err := envDuration("CLOUDFLARE_DOMAIN_STATE_TTL", 10*time.Second)
		if err != nil {
			return nil, err
		}
		if stateTTL == 0 {
			stateTTL = -1 // 0 turns the cache off; the target's zero is its default
		}
		target, err := cloudflare.New(cloudflare.Config{
			APIBase:           os.Getenv("CLOUDFLARE_API_BASE_URL"),
			AccountID:         os.Getenv("CLOUDFLARE_ACCOUNT_ID"),
			Token:             os.Getenv("CLOUDFLARE_API_TOKEN"),
			ScriptName:        os.Getenv("CLOUDFLARE_SCRIPT_NAME"),
			DispatchNamespace: os.Getenv("CLOUDFLARE_DISPATCH_NAMESPACE"),
			URLTemplate:       os.Getenv("CLOUDFLARE_URL_TEMPLATE"),
			ZoneID:            os.Getenv("CLOUDFLARE_ZONE_ID"),
			ZoneName:          os.Getenv("CLOUDFLARE_ZONE_NAME"),
			DomainMode:        os.Getenv("CLOUDFLARE_DOMAIN_MODE"),
			StateTTL:          stateTTL,
		})
		if err != nil {
			return nil, fmt.Errorf("deploy target: %w", err)
		}
		return target, nil
	default:
		return nil, fmt.Errorf("DEPLOY_TARGET %q is not one of local, cloudflare", t)
	}
}

// domainStates is the API's hook to the target's view of custom domains,
// nil when the target keeps none.
func domainStates(target libra.DeployTarget) func(context.Context, string, []string) map[string]libra.TargetDomain {
	reader, ok := target.(libra.DomainStateReader)
	if !ok {
		return nil
	}
	return reader.DomainStates
}

// republisher is the rollback hook of a deploy target: the kept
// deployment's manifest (files and Worker, as built then) is published
// again; Cloudflare already has every asset, so nothing is uploaded but
// the Worker's metadata and modules. Deployments that cannot be rolled
// back to are left for the store to refuse, with its own error.
func republisher(target libra.DeployTarget, store libra.Store, artifacts libra.ArtifactStore) func(context.Context, string, string) error {
	if target == nil {
		return nil
	}
	return func(ctx context.Context, projectID, deploymentID string) error {
		d, err := store.Deployment(ctx, deploymentID)
		if err != nil || d.ProjectID != projectID || d.Status != libra.StatusCompleted || d.Manifest == "" {
			return nil
		}
		m, err := libra.LoadManifest(ctx, artifacts, d.Manifest)
		if err != nil {
			return fmt.Errorf("load manifest of %s: %w", deploymentID, err)
		}
		domains, err := workflow.VerifiedDomains(ctx, store, projectID)
		if err != nil {
			return err
		}
		_, err = target.Publish(ctx, libra.PublishRequest{ProjectID: projectID, DeploymentID: deploymentID, Manifest: m, Artifacts: artifacts, Domains: domains})
		return err
	}
}
