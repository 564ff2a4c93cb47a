package storesql

// Deleting a project: both stores run these in one transaction, after
// locking the project row (PostgreSQL) or holding the one writer (SQLite).
// The active check names the statuses that a worker still moves, so final
// statuses added later (cancelled) never block a delete.
const (
	ProjectActiveDeployments = `SELECT count(*) FROM deployments WHERE project_id = ? AND status IN ('queued', 'in_progress')`
	ProjectSiteLabels        = `SELECT site_label FROM deployments WHERE project_id = ?`
	ProjectDomains           = `SELECT domain FROM domains WHERE project_id = ? ORDER BY domain`
	DeleteProjectLogs        = `DELETE FROM deployment_logs WHERE deployment_id IN (SELECT id FROM deployments WHERE project_id = ?)`
	// Only finished jobs go, as for one deployment (DeleteFinishedJob).
	DeleteProjectJobs = `DELETE FROM river_job WHERE id IN (SELECT job_id FROM deployments WHERE project_id = ? AND job_id IS NOT NULL)
		AND state IN ('completed', 'cancelled', 'discarded')`
	DeleteProjectDeployments = `DELETE FROM deployments WHERE project_id = ?`
	DeleteProjectDomains     = `DELETE FROM domains WHERE project_id = ?`
	DeleteProjectRow         = `DELETE FROM projects WHERE id = ?`
)

// DeleteProjectSteps are the deletes in order: children before the rows
// they refer to.
var DeleteProjectSteps = []string{
	DeleteProjectLogs, DeleteProjectEvents, DeleteProjectJobs, DeleteProjectDeployments, DeleteProjectDomains,
	DeleteProjectEnv, DeleteProjectRow,
}
