// Package daytona runs builds in Daytona sandboxes through Daytona's REST API
// (create, poll until started, delete) and its toolbox API (bulk file upload,
// download, session commands run asynchronously whose logs are polled as
// they grow).
//
// It is a small client of its own rather than the generated
// api-client-go/toolbox-api-client-go modules: we use nine endpoints, the
// generated modules bring hundreds of models and their own HTTP plumbing,
// and the upstream repository is no longer maintained.
package daytona
