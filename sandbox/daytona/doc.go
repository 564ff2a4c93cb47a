// Package daytona runs builds in Daytona sandboxes through Daytona's REST API
// (create, poll until started, delete) and its toolbox API (bulk file upload,
// download, session commands run asynchronously whose logs are polled as
// they grow).
//
// It is a small client of its own rather than the generated
// api-client-go/toolbox-api-client-go modules (v0.190.0): we use ten of the
// 322 operations their two specs describe (281 schemas, each a generated
// model), the generated code brings its own HTTP plumbing in which our error
// classification (a provider timeout is not the build's timeout) would have
// to be bolted on, and the upstream repository is no longer maintained.
package daytona
