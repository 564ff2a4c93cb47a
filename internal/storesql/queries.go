package storesql

// Query texts both SQLite and PostgreSQL accept ("?" placeholders; see
// Rebind). Writes that need a dialect's own spelling (upserts, greatest/max,
// RETURNING on a conflict) stay in each store.

const (
	InsertProject  = `INSERT INTO projects (id, org_id, name, host, created_at) VALUES (?, ?, ?, ?, ?)`
	SelectProject  = `SELECT ` + ProjectColumns + ` FROM projects WHERE id = ?`
	SelectProjects = `SELECT ` + ProjectColumns + ` FROM projects WHERE org_id = ? ORDER BY id`

	DeleteQuota     = `DELETE FROM quotas WHERE org_id = ?`
	SelectQuota     = `SELECT monthly_limit FROM quotas WHERE org_id = ?`
	SelectQuotaUsed = `SELECT used FROM quota_usage WHERE org_id = ? AND month = ?`

	InsertDeployment = `INSERT INTO deployments (id, site_label, project_id, org_id, user_id, custom_domain,
		status, steps, input, job_id, created_at, quota_month, target, alias)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	SelectDeployment = `SELECT ` + DeploymentColumns + ` FROM deployments WHERE id = ?`
	// PublishManifest matches no row once a cancel was requested: cancel
	// and publish are decided by whichever commits first (PublishRefused).
	PublishManifest = `UPDATE deployments SET manifest = ?, url = ? WHERE id = ? AND cancel_requested_at IS NULL
		RETURNING seq, project_id, custom_domain, site_label, target, alias`
	// MoveAlias is newest-wins: the alias moves only to a deployment newer
	// than every one the project published before.
	MoveAlias = `UPDATE projects SET current_deployment = ?, current_seq = ?
		WHERE id = ? AND (current_seq IS NULL OR current_seq < ?)`

	SelectLogs = `SELECT ts, step, level, message FROM (
		SELECT id, ts, step, level, message FROM deployment_logs WHERE deployment_id = ? ORDER BY id DESC LIMIT ?
	) AS newest ORDER BY id`

	SiteByLabel = `SELECT id, manifest FROM deployments WHERE site_label = ? AND manifest != ''`
	// SiteByAlias serves the newest published deployment of an alias
	// (parameters: project host, alias name, the whole label). A label that
	// is any deployment's site label, published or not, is never an
	// alias's: deployment labels win (targets.go). "alias != ''" lets both
	// databases use the partial index deployments_alias.
	SiteByAlias = `SELECT d.id, d.manifest FROM projects p JOIN deployments d ON d.project_id = p.id
		WHERE p.host = ? AND d.alias = ? AND d.alias != '' AND d.manifest != ''
		  AND NOT EXISTS (SELECT 1 FROM deployments x WHERE x.site_label = ?)
		ORDER BY d.seq DESC LIMIT 1`
	SiteByProject = `SELECT d.id, d.manifest FROM projects p JOIN deployments d ON d.id = p.current_deployment
		WHERE p.host = ?`
	// SiteByDomain serves nothing while a domain is pending: nothing proved
	// it is its project's to serve.
	SiteByDomain = `SELECT d.id, d.manifest FROM domains m JOIN projects p ON p.id = m.project_id
		JOIN deployments d ON d.id = p.current_deployment WHERE m.domain = ? AND m.verified_at IS NOT NULL`
	DomainOwner = `SELECT project_id FROM domains WHERE domain = ?`

	CountDeployments = `SELECT count(*) FROM deployments WHERE project_id = ?`
	ListDeployments  = `SELECT ` + InfoColumns + ` FROM deployments d JOIN projects p ON p.id = d.project_id
		WHERE d.project_id = ? AND d.seq < ? ORDER BY d.seq DESC LIMIT ?`
	SelectRelease = `SELECT current_seq, current_deployment FROM projects WHERE id = ?`
	SelectInfo    = `SELECT ` + InfoColumns + ` FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.id = ?`

	RollbackTarget = `SELECT project_id, status, manifest, seq FROM deployments WHERE id = ?`
	// PointAlias points production at a deployment (rollback, promote) and
	// raises the newest-wins mark to it when it is newer: a promoted
	// preview is then never taken back by an older deployment that
	// publishes later, while a rollback to an older one leaves the mark as
	// it was. Parameters: deployment id, its seq twice, project id.
	PointAlias = `UPDATE projects SET current_deployment = ?,
		current_seq = CASE WHEN current_seq IS NULL OR current_seq < ? THEN ? ELSE current_seq END
		WHERE id = ?`
	DeleteTarget = `SELECT d.project_id, d.status, d.job_id, p.current_deployment, d.alias, coalesce(p.host, '')
		FROM deployments d JOIN projects p ON p.id = d.project_id WHERE d.id = ?`
	DeleteLogs       = `DELETE FROM deployment_logs WHERE deployment_id = ?`
	DeleteDeployment = `DELETE FROM deployments WHERE id = ?`
	// DeleteFinishedJob removes a deployment's job only once it is
	// finished: `dlq list` would otherwise show, and `dlq retry` offer,
	// deployments that no longer exist.
	DeleteFinishedJob = `DELETE FROM river_job WHERE id = ? AND state IN ('completed', 'cancelled', 'discarded')`

	// Prunable selects deployments that retention may remove: final, not
	// production, not what a stable alias serves (its newest published
	// deployment), and not among their project's newest keep (first
	// parameter); at most the second parameter of them.
	Prunable = `SELECT d.id, d.site_label, d.project_id, d.status, d.created_at, d.job_id FROM (
		SELECT id, site_label, project_id, status, created_at, job_id, seq, alias, manifest,
		       row_number() OVER (PARTITION BY project_id ORDER BY seq DESC) AS newest_first
		FROM deployments) d
		JOIN projects p ON p.id = d.project_id
		WHERE d.newest_first > ? AND d.status IN ('completed', 'failed', 'cancelled')
		  AND (p.current_deployment IS NULL OR p.current_deployment != d.id)
		  AND NOT (d.alias != '' AND d.manifest != '' AND NOT EXISTS (SELECT 1 FROM deployments n
		    WHERE n.project_id = d.project_id AND n.alias = d.alias AND n.manifest != '' AND n.seq > d.seq))
		ORDER BY d.seq LIMIT ?`

	RefsColumns = `seq, id, project_id, status, manifest, input`
	// Two spellings rather than one with "? = '' OR": SQLite plans a query
	// once, and only the second can use the (project_id, seq) index.
	AllRefs     = `SELECT ` + RefsColumns + ` FROM deployments WHERE seq > ? ORDER BY seq LIMIT ?`
	ProjectRefs = `SELECT ` + RefsColumns + ` FROM deployments WHERE project_id = ? AND seq > ? ORDER BY seq LIMIT ?`

	SelectDomains     = `SELECT ` + DomainColumns + ` FROM domains WHERE project_id = ? ORDER BY created_at, domain`
	InsertDomain      = `INSERT INTO domains (domain, project_id, created_at) VALUES (?, ?, ?) ON CONFLICT (domain) DO NOTHING`
	RemoveDomain      = `DELETE FROM domains WHERE domain = ? AND project_id = ?`
	SelectDomainToken = `SELECT domain_token FROM projects WHERE id = ?`
	StoreToken        = `UPDATE projects SET domain_token = coalesce(domain_token, ?) WHERE id = ? RETURNING domain_token`
	// The three outcomes of a domain check; each is completed with
	// DomainCheckWhere.
	DomainVerified   = `UPDATE domains SET verified_at = coalesce(verified_at, ?), checked_at = ?, check_error = ''`
	DomainRefuted    = `UPDATE domains SET verified_at = NULL, checked_at = ?, check_error = ?`
	DomainUnanswered = `UPDATE domains SET checked_at = ?, check_error = ?`
	DomainCheckWhere = ` WHERE domain = ? AND project_id = ? RETURNING ` + DomainColumns
	PendingDomains   = `SELECT m.domain, m.project_id, p.domain_token
		FROM domains m JOIN projects p ON p.id = m.project_id
		WHERE m.verified_at IS NULL AND p.domain_token IS NOT NULL AND m.created_at > ?
		  AND (m.checked_at IS NULL OR m.checked_at < ?)
		ORDER BY coalesce(m.checked_at, 0), m.domain LIMIT ?`
	VerifiedDomainOrg = `SELECT p.org_id FROM domains m JOIN projects p ON p.id = m.project_id
		WHERE m.domain = ? AND m.verified_at IS NOT NULL`

	// FailLost fails deployments that are not final although their job
	// is: a process that died between finishing the job and saving the
	// deployment, or a job removed by hand. One whose cancel was requested
	// ends cancelled: that is what its org asked for.
	FailLost = `UPDATE deployments SET
		status = CASE WHEN cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END,
		error = CASE WHEN cancel_requested_at IS NULL THEN 'the deployment''s queue job ended without finishing it'
		  ELSE 'cancelled' END,
		finished_at = ?
		WHERE status IN ('queued', 'in_progress') AND (
		  job_id IS NULL OR NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = deployments.job_id
		    AND j.state IN ('available', 'running', 'retryable', 'scheduled', 'pending')))`
)
