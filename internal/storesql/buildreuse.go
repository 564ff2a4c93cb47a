package storesql

const (
	SetBuildKey = `UPDATE deployments SET build_key = ? WHERE id = ?`
	// BuiltOutput is the newest completed deployment of a project built
	// from a key (parameters: project, key, a deployment to leave out).
	// "build_key != ''" lets both databases use the partial index
	// deployments_build_key.
	BuiltOutput = `SELECT id, manifest FROM deployments
		WHERE project_id = ? AND build_key = ? AND build_key != '' AND id != ?
		  AND status = 'completed' AND manifest != ''
		ORDER BY seq DESC LIMIT 1`
)
