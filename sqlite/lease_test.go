package sqlite_test

import (
	"context"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// A job fetched by a node that died before its worker took the lease has no
// lease to expire: the reaper finds it by the node's stale heartbeat, and
// leaves alone one whose node is alive.
func TestReapUnleasedJobOfDeadNode(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		node      string
		heartbeat bool
		reaped    int
	}{
		{"alive-node", true, 0},
		{"dead-node", false, 1},
	}
	for _, tt := range tests {
		d := &libra.Deployment{ID: libra.NewDeploymentID(), ProjectID: "p", OrgID: "o", UserID: "u", Status: libra.StatusQueued,
			Steps: libra.NewStepStates(), CreatedAt: libra.Now(), QuotaMonth: "2026-11", Input: []libra.FileOp{}}
		if err := db.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		if tt.heartbeat {
			if err := db.Heartbeat(ctx, tt.node); err != nil {
				t.Fatal(err)
			}
		}
		// What River does when a node's producer fetches the job.
		if _, err := db.Writer.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = datetime('now', 'subsec'),
			attempted_by = jsonb(json_array(?)) WHERE id = (SELECT job_id FROM deployments WHERE id = ?)`, tt.node, d.ID); err != nil {
			t.Fatal(err)
		}
		got, err := db.ReapLeases(ctx, time.Minute, 3, 10)
		if err != nil || len(got) != tt.reaped {
			t.Fatalf("%s: reaped %+v, %v; want %d", tt.node, got, err, tt.reaped)
		}
		if tt.reaped == 0 {
			continue
		}
		var oldState, newState string
		if err := db.Writer.QueryRowContext(ctx, `SELECT o.state, n.state FROM deployments d JOIN river_job n ON n.id = d.job_id
			JOIN river_job o ON json_extract(o.attempted_by, '$[0]') = 'dead-node' WHERE d.id = ?`, d.ID).Scan(&oldState, &newState); err != nil {
			t.Fatal(err)
		}
		if got[0].FromNode != tt.node || oldState != "cancelled" || newState != "available" {
			t.Fatalf("reaped %+v: old job %s, new job %s", got[0], oldState, newState)
		}
	}
}

// A node silent for a day is forgotten at the next heartbeat of any node.
func TestHeartbeatForgetsLongSilentNodes(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if _, err := db.Writer.ExecContext(ctx, `INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ('gone', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Heartbeat(ctx, "here"); err != nil {
		t.Fatal(err)
	}
	nodes, err := db.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].ID != "here" {
		t.Fatalf("nodes: %+v, %v", nodes, err)
	}
}
