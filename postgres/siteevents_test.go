package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/postgres"
	"github.com/libra-deploy/libra-deploy/queue"
)

// recorder is the site cache of a watching node: it records what it is told.
type recorder struct {
	mu        sync.Mutex
	changes   []libra.SiteChange
	forgetAll int
	signal    chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) Forget(c libra.SiteChange) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) ForgetAll() {
	r.mu.Lock()
	r.forgetAll++
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) poke() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// await waits until cond holds on what was recorded, and returns how long
// that took.
func (r *recorder) await(t *testing.T, what string, within time.Duration, cond func(changes []libra.SiteChange, forgetAll int) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		ok := cond(r.changes, r.forgetAll)
		r.mu.Unlock()
		if ok {
			return time.Since(start)
		}
		select {
		case <-r.signal:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("%s: not within %s; recorded %+v and %d ForgetAll", what, within, r.changes, r.forgetAll)
		}
	}
}

func (r *recorder) forgetAlls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forgetAll
}

// openNode opens a store on url as node id, with a real River queue.
func openNode(t *testing.T, url, id string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), postgres.Options{URL: url, NodeID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q, err := queue.New[pgx.Tx](riverpgxv5.New(db.Pool), nil, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	db.Enqueue = q.InsertManyTx
	return db
}

// watch starts node db's site events and waits until it listens.
func watch(t *testing.T, db *postgres.DB) *recorder {
	t.Helper()
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.WatchSites(ctx, rec)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	rec.await(t, "first LISTEN", 10*time.Second, func(_ []libra.SiteChange, n int) bool { return n >= 1 })
	return rec
}

// publish accepts, publishes and completes a deployment of project.
func publish(t *testing.T, db *postgres.DB, project string) *libra.Deployment {
	t.Helper()
	ctx := context.Background()
	d := deployment(project, "o")
	if err := db.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := db.Publish(ctx, d.ID, "sha256:m-"+d.ID, "http://x/"); err != nil {
		t.Fatal(err)
	}
	now := libra.Now()
	d.Status, d.StartedAt, d.FinishedAt = libra.StatusCompleted, &now, &now
	if err := db.UpdateDeployment(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

func hasChange(want libra.SiteChange) func([]libra.SiteChange, int) bool {
	return func(cs []libra.SiteChange, _ int) bool {
		return slices.ContainsFunc(cs, func(c libra.SiteChange) bool {
			c.Generation = 0
			return c == want
		})
	}
}

// Every kind of production flip made on one node reaches another node's
// cache as the change it is, with one generation bump per flip.
func TestSiteEventsEveryFlip(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t, migrateTemplate)
	writer, reader := openNode(t, url, "writer"), openNode(t, url, "reader")
	rec := watch(t, reader)
	if err := writer.CreateProject(ctx, libra.Project{ID: "Shop", OrgID: "o", Name: "shop", CreatedAt: libra.Now()}); err != nil {
		t.Fatal(err)
	}
	var v1, v2, v3 *libra.Deployment
	flips := []struct {
		name  string
		bumps int64 // flips, so generations, it makes
		flip  func() []libra.SiteChange
	}{
		{"publish", 1, func() []libra.SiteChange {
			v1 = publish(t, writer, "Shop")
			return []libra.SiteChange{{SiteLabel: v1.SiteLabel}, {ProjectHost: "shop"}}
		}},
		{"publish again", 2, func() []libra.SiteChange {
			v2, v3 = publish(t, writer, "Shop"), publish(t, writer, "Shop")
			return []libra.SiteChange{{SiteLabel: v3.SiteLabel}, {ProjectHost: "shop"}}
		}},
		{"rollback", 1, func() []libra.SiteChange {
			must(t, writer.Rollback(ctx, "Shop", v2.ID))
			return []libra.SiteChange{{ProjectHost: "shop"}}
		}},
		{"delete", 1, func() []libra.SiteChange {
			must(t, writer.DeleteDeployment(ctx, v3.ID))
			return []libra.SiteChange{{SiteLabel: v3.SiteLabel}}
		}},
		{"retention", 1, func() []libra.SiteChange {
			_, err := writer.PruneDeployments(ctx, 1, false) // v2 is production and stays
			must(t, err)
			return []libra.SiteChange{{SiteLabel: v1.SiteLabel}}
		}},
		{"domain verified", 1, func() []libra.SiteChange {
			_, err := writer.AddDomain(ctx, "Shop", "shop.example.com")
			must(t, err)
			_, err = writer.RecordDomainCheck(ctx, "Shop", "shop.example.com", libra.DomainCheck{Verified: true})
			must(t, err)
			return []libra.SiteChange{{Domain: "shop.example.com"}}
		}},
		{"domain removed", 1, func() []libra.SiteChange {
			must(t, writer.RemoveDomain(ctx, "Shop", "shop.example.com"))
			return []libra.SiteChange{{Domain: "shop.example.com"}}
		}},
	}
	for _, f := range flips {
		before, err := writer.SiteGeneration(ctx)
		must(t, err)
		for _, want := range f.flip() {
			took := rec.await(t, f.name, 5*time.Second, hasChange(want))
			t.Logf("%s: %+v heard by the other node %s after the flip returned", f.name, want, took)
		}
		after, err := writer.SiteGeneration(ctx)
		must(t, err)
		if after-before != f.bumps {
			t.Errorf("%s: generation %d -> %d, want %d bumps", f.name, before, after, f.bumps)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A check that got no answer changes nothing served: no flip, no bump.
func TestSiteEventsUnansweredCheckIsNoFlip(t *testing.T) {
	ctx := context.Background()
	db := openNode(t, pgtest.Database(t, migrateTemplate), "n")
	must(t, db.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}))
	_, err := db.AddDomain(ctx, "p", "p.example.com")
	must(t, err)
	before, err := db.SiteGeneration(ctx)
	must(t, err)
	_, err = db.RecordDomainCheck(ctx, "p", "p.example.com", libra.DomainCheck{Reason: "timeout"})
	must(t, err)
	if after, err := db.SiteGeneration(ctx); err != nil || after != before {
		t.Errorf("unanswered check: generation %d -> %d (%v)", before, after, err)
	}
}

// listenerPID finds a node's LISTEN connection by its application_name.
func listenerPID(t *testing.T, db *postgres.DB, node string) int32 {
	t.Helper()
	var pid int32
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.Pool.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`,
			postgres.ListenerName(node)).Scan(&pid)
		if err == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection named %s: %v", postgres.ListenerName(node), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The LISTEN connection killed by the server: the node reconnects, drops
// every cached lookup (it may have missed flips), and hears the next flip.
func TestSiteEventsListenerReconnects(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t, migrateTemplate)
	writer, reader := openNode(t, url, "writer"), openNode(t, url, "reader")
	rec := watch(t, reader)
	must(t, writer.CreateProject(ctx, libra.Project{ID: "p", OrgID: "o", Name: "p", CreatedAt: libra.Now()}))
	old := listenerPID(t, writer, "reader")
	resyncs := rec.forgetAlls()
	var killed bool
	must(t, writer.Pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, old).Scan(&killed))
	if !killed {
		t.Fatalf("pg_terminate_backend(%d) refused", old)
	}
	took := rec.await(t, "resync after reconnect", 10*time.Second, func(_ []libra.SiteChange, n int) bool { return n > resyncs })
	t.Logf("listener killed: cache dropped after %s", took)
	if pid := listenerPID(t, writer, "reader"); pid == old {
		t.Fatalf("listener still on backend %d", pid)
	}
	d := publish(t, writer, "p")
	took = rec.await(t, "flip after reconnect", 5*time.Second, hasChange(libra.SiteChange{SiteLabel: d.SiteLabel}))
	t.Logf("first flip after reconnect heard in %s", took)
}

// A generation that moves without a notification (the flip's NOTIFY lost
// with a connection) is caught by the poll within a second.
func TestSiteGenerationPoll(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t, migrateTemplate)
	writer, reader := openNode(t, url, "writer"), openNode(t, url, "reader")
	rec := watch(t, reader)
	var worst time.Duration
	for i := range 3 {
		resyncs := rec.forgetAlls()
		_, err := writer.Pool.Exec(ctx, `UPDATE site_generation SET generation = generation + 1`)
		must(t, err)
		took := rec.await(t, "poll", 5*time.Second, func(_ []libra.SiteChange, n int) bool { return n > resyncs })
		t.Logf("bump %d without NOTIFY: caches dropped after %s", i+1, took)
		worst = max(worst, took)
	}
	// The poll runs every second (plus a 100 ms grace while the listener
	// is up); 3 s leaves room for a loaded machine.
	if worst > 3*time.Second {
		t.Errorf("generation poll took %s, want about 1.1 s at most", worst)
	}
}
