package libra

import "context"

// BuildReuseStore remembers what each build was made from, so that
// deploying a project whose files, build settings and environment have not
// changed publishes the output of its last such build instead of running
// the install and the build again (warm redeploys in seconds, as a
// Vercel redeploy of an unchanged commit is).
//
// The key is a digest the workflow computes (see workflow's buildKey);
// the store only matches it, within one project, so an org can never be
// served another's output.
type BuildReuseStore interface {
	// SetBuildKey records the digest of the inputs of the deployment's
	// build. With a lease in the context it writes only while that lease is
	// the deployment's (ErrLeaseLost otherwise), as UpdateDeployment does.
	SetBuildKey(ctx context.Context, id, key string) error
	// BuiltOutput returns the newest completed deployment of the project
	// whose build had this key, other than exclude, and the digest of its
	// manifest; ErrNotFound when there is none.
	BuiltOutput(ctx context.Context, projectID, key, exclude string) (deploymentID, manifest string, err error)
}
