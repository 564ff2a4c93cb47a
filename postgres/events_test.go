package postgres_test

import (
	"context"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/pgtest"
)

// A follower on one node is woken by a write made on another, through the
// listener the site events already keep, within milliseconds, and the
// events it then reads are the ones written there.
func TestEventsWakeOtherNodes(t *testing.T) {
	url := pgtest.Database(t, migrateTemplate)
	writer, reader := openNode(t, url, "writer"), openNode(t, url, "reader")
	watch(t, reader)
	ctx := context.Background()
	d := deployment("p", "o")
	must(t, writer.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}))
	must(t, writer.CreateDeployment(ctx, d))

	wake, stop := reader.WatchEvents(d.ID)
	defer stop()
	tests := []struct {
		name  string
		write func() error
	}{
		{"log lines", func() error {
			return writer.AppendLogs(ctx, d.ID, []libra.LogEntry{{Time: libra.Now(), Step: libra.StepBuild, Level: "info", Message: "hello"}})
		}},
		{"state", func() error {
			d.Status = libra.StatusInProgress
			return writer.UpdateDeployment(ctx, d, nil)
		}},
	}
	var after int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			must(t, tt.write())
			select {
			case <-wake:
				t.Logf("%s: woken %s after the write began", tt.name, time.Since(start))
			case <-time.After(5 * time.Second):
				t.Fatal("the other node's follower was not woken")
			}
			got, err := reader.DeploymentEvents(ctx, d.ID, after, 100)
			must(t, err)
			if len(got) == 0 || got[0].ID != after+1 {
				t.Fatalf("events after %d: %+v", after, got)
			}
			after = got[len(got)-1].ID
		})
	}
}
