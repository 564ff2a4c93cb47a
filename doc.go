// Package libra holds libra-deploy's domain: deployments and their six steps,
// projects, tokens and quotas, the checks every request must pass, and the
// interfaces (store, artifact store, sandbox, site resolver) that the
// technology packages implement.
//
// The package imports no database, queue or HTTP code on purpose: the steps in
// package workflow and the API in package http talk only to what is declared
// here, so that SQLite and PostgreSQL, local disk and S3, bubblewrap and a
// remote sandbox can be swapped by configuration without touching them.
package libra
