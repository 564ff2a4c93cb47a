package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	libra "github.com/libra-deploy/libra-deploy"
)

// Production flips reach every node two ways. Each flip's transaction bumps
// the site generation (migrations/0003) and sends a NOTIFY on sitesChannel
// saying what changed; every node LISTENs on a connection of its own and
// drops just those cached lookups. NOTIFY has no replay, so a node whose
// LISTEN connection dropped drops every cached lookup when it is back, and
// every node also reads the generation each generationPoll and drops every
// cached lookup when it moved past the last one it heard of. A node serves a
// stale production alias for at most generationPoll + catchUpGrace (1.1 s,
// plus one query) even while it cannot listen at all; with the listener up,
// for the notification's delivery time (milliseconds).

var _ libra.SiteEvents = (*DB)(nil)

const (
	// sitesChannel is the NOTIFY channel of production flips.
	sitesChannel = "libra_sites"
	// listenerPrefix + the node's id is the LISTEN connection's
	// application_name, so an operator (or a test) can find it in
	// pg_stat_activity.
	listenerPrefix = "libra-deploy-listener-"
	// listenerPing is how long the listener waits for a notification
	// before it checks that its connection still answers: a connection
	// that a network cut left half-open never reports an error by itself.
	listenerPing = 30 * time.Second
	// connectTimeout bounds one connection attempt of the listener.
	connectTimeout = 10 * time.Second
)

// Tunable by tests in this package only.
var (
	generationPoll = time.Second
	// catchUpGrace is how long a poll that finds the generation ahead of
	// a connected listener waits for the notification, which is usually
	// already on its way, before dropping every cached lookup: a busy
	// cluster would otherwise drop them all whenever a poll fell between a
	// flip's commit and its delivery.
	catchUpGrace = 100 * time.Millisecond
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
)

const selectGeneration = `SELECT generation FROM site_generation`

// ListenerName is the application_name of a node's LISTEN connection.
func ListenerName(nodeID string) string { return listenerPrefix + nodeID }

// flipped records production flips inside tx: it bumps the site generation
// and queues one notification per change, which PostgreSQL delivers when,
// and only if, tx commits. The generation row's lock is held until then, so
// flips commit, and are heard, in generation order.
func flipped(ctx context.Context, tx pgx.Tx, changes ...libra.SiteChange) error {
	if len(changes) == 0 {
		return nil
	}
	var gen int64
	if err := tx.QueryRow(ctx, `UPDATE site_generation SET generation = generation + 1 RETURNING generation`).Scan(&gen); err != nil {
		return fmt.Errorf("bump site generation: %w", err)
	}
	payloads := make([]string, len(changes))
	for i, c := range changes {
		c.Generation = gen
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("encode site change: %w", err)
		}
		payloads[i] = string(b)
	}
	// One round trip for any number of changes (retention sends a batch).
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, sitesChannel, payloads); err != nil {
		return fmt.Errorf("notify site change: %w", err)
	}
	return nil
}

// projectFlip names a project's alias, as the site host spells it.
func projectFlip(projectID string) libra.SiteChange {
	return libra.SiteChange{ProjectHost: strings.ToLower(projectID)}
}

// SiteGeneration returns the current site generation.
func (db *DB) SiteGeneration(ctx context.Context) (int64, error) {
	var gen int64
	if err := db.Pool.QueryRow(ctx, selectGeneration).Scan(&gen); err != nil {
		return 0, fmt.Errorf("select site generation: %w", err)
	}
	return gen, nil
}

// WatchSites tells cache about every production flip until ctx ends: a
// listener on its own connection (not the pool's, whose connections come
// and go) and the generation poll. It returns when ctx ends.
func (db *DB) WatchSites(ctx context.Context, cache libra.SiteCache) error {
	w := &siteWatch{db: db, cache: cache, log: db.log.With("component", "site-events")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.poll(ctx)
	}()
	w.listen(ctx)
	<-done
	return nil
}

type siteWatch struct {
	db    *DB
	cache libra.SiteCache
	log   *slog.Logger
	// seen is the newest generation whose changes cache has been told
	// (or that a ForgetAll covered).
	seen atomic.Int64
	// listening is set while a LISTEN session is up.
	listening atomic.Bool
}

// advance raises seen to gen and reports whether gen was newer.
func (w *siteWatch) advance(gen int64) bool {
	for {
		old := w.seen.Load()
		if gen <= old {
			return false
		}
		if w.seen.CompareAndSwap(old, gen) {
			return true
		}
	}
}

// poll catches what the listener missed: a generation newer than any it
// heard of means a flip whose notification never arrived here.
func (w *siteWatch) poll(ctx context.Context) {
	t := time.NewTicker(generationPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.check(ctx)
	}
}

func (w *siteWatch) check(ctx context.Context) {
	gen, err := w.db.SiteGeneration(ctx)
	if err != nil {
		// Cached lookups keep serving while the database is away.
		w.log.Debug("site generation poll failed", "error", err)
		return
	}
	if gen <= w.seen.Load() {
		return
	}
	if w.listening.Load() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(catchUpGrace):
		}
	}
	if w.advance(gen) {
		w.log.Info("site generation moved without a notification; dropping cached host lookups", "generation", gen)
		w.cache.ForgetAll()
	}
}

// listen keeps one LISTEN session up, reconnecting with backoff.
func (w *siteWatch) listen(ctx context.Context) {
	wait := reconnectMin
	for ctx.Err() == nil {
		listened, err := w.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if listened {
			wait = reconnectMin
		}
		w.log.Warn("site events: LISTEN connection lost; reconnecting", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, reconnectMax)
	}
}

// session runs one LISTEN connection until it fails; listened reports
// whether it got as far as listening.
func (w *siteWatch) session(ctx context.Context) (listened bool, err error) {
	conn, err := w.connect(ctx)
	if err != nil {
		return false, err
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "LISTEN "+sitesChannel+"; LISTEN "+eventsChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	// Listening first, then reading the generation: a flip committed
	// after LISTEN is notified, one before it is covered by ForgetAll.
	var gen int64
	if err := conn.QueryRow(ctx, selectGeneration).Scan(&gen); err != nil {
		return false, fmt.Errorf("select site generation: %w", err)
	}
	// NOTIFY has no replay: whatever flipped while this node was not
	// listening is known only as "something".
	w.advance(gen)
	w.cache.ForgetAll()
	// Followers of deployment events may have missed a wake-up too.
	w.db.events.NotifyAll()
	w.log.Info("site events: listening", "generation", gen)
	w.listening.Store(true)
	defer w.listening.Store(false)
	return true, w.receive(ctx, conn)
}

func (w *siteWatch) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := w.db.Pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenerName(w.db.nodeID)
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// receive hands notifications to the cache until the connection fails.
func (w *siteWatch) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenerPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil && n.Channel == eventsChannel:
			w.db.events.Notify(n.Payload)
		case err == nil:
			w.apply(n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Quiet for a while: make sure the connection is alive.
			if err := ping(ctx, conn); err != nil {
				return err
			}
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

func ping(ctx context.Context, conn *pgx.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// apply tells the cache one change; one it cannot read drops everything.
func (w *siteWatch) apply(payload string) {
	var c libra.SiteChange
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		w.log.Warn("site events: unreadable notification; dropping cached host lookups", "error", err)
		w.cache.ForgetAll()
		return
	}
	w.cache.Forget(c)
	w.advance(c.Generation)
}
