package storesql

import (
	"context"
	"fmt"
)

// BuiltOutput is the newest completed deployment of a project built from a
// key (parameters: project, key, a deployment to leave out). "build_key !=
// ”" lets both databases use the partial index deployments_build_key.
const BuiltOutput = `SELECT id, manifest FROM deployments
	WHERE project_id = ? AND build_key = ? AND build_key != '' AND id != ?
	  AND status = 'completed' AND manifest != ''
	ORDER BY seq DESC LIMIT 1`

// SetBuildKey records a deployment's build key in tx, fenced by the
// context's lease like every write of a run.
func SetBuildKey(ctx context.Context, tx Tx, id, key string) error {
	if err := Guard(ctx, tx, id); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE deployments SET build_key = ? WHERE id = ?`, key, id); err != nil {
		return fmt.Errorf("set build key: %w", err)
	}
	return nil
}
