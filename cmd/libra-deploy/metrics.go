package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// adminToken is ADMIN_TOKEN: read here rather than kept in config, so that
// it is never printed with the settings.
func adminToken() string { return os.Getenv("ADMIN_TOKEN") }

// queueConsolePrefix is where River's web console is mounted.
const queueConsolePrefix = "/admin/queue"

// queueCounting is the part of a state store that counts River's jobs by
// state for /metrics.
type queueCounting interface {
	QueueDepth(ctx context.Context) (map[string]int64, error)
}

// queueConsole is the part of a state store that builds River's web
// console over its own River client.
type queueConsole interface {
	QueueConsole(ctx context.Context, logger *slog.Logger) (http.Handler, error)
}

// startOps wires the operator's views: the queue depth into /metrics, the
// admin routes (/metrics, the queue console) and the metrics listener of
// METRICS_ADDR. The returned func stops the listener.
func (s *service) startOps(ctx context.Context) (func(), error) {
	if qc, ok := s.db.(queueCounting); ok {
		if err := metrics.RegisterQueue(qc.QueueDepth); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	if err := metrics.RegisterDataDir(s.c.DataDir); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s.admin = map[string]http.Handler{}
	if qc, ok := s.db.(queueConsole); ok {
		h, err := qc.QueueConsole(ctx, s.log)
		if err != nil {
			return nil, err
		}
		s.admin[queueConsolePrefix+"/"] = h
	}
	// Also with METRICS_ADDR: an operator with the admin token may still
	// look from outside the monitoring network.
	s.admin["GET /metrics"] = metrics.Handler()
	if s.c.MetricsAddr == "" {
		return func() {}, nil
	}
	return s.serveMetrics(s.c.MetricsAddr)
}

// serveMetrics serves /metrics, without authentication, on a listener of
// its own: one only the monitoring network reaches.
func (s *service) serveMetrics(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener (METRICS_ADDR): %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener", "err", err)
		}
	}()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// newQueueConsole builds River's web console over client and starts its
// background work, which ends with ctx.
func newQueueConsole[TTx any](ctx context.Context, client *river.Client[TTx], logger *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    queueConsolePrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("queue console: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("start queue console: %w", err)
	}
	return h, nil
}

// queueDepthSQL counts River's jobs by state; the same on SQLite and
// PostgreSQL.
const queueDepthSQL = `SELECT state, count(*) FROM river_job GROUP BY state`

func (s *sqliteState) QueueDepth(ctx context.Context) (map[string]int64, error) {
	rows, err := s.Writer.QueryContext(ctx, queueDepthSQL)
	if err != nil {
		return nil, fmt.Errorf("count queue jobs: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count queue jobs: %w", err)
		}
		out[state] = n
	}
	return out, rows.Err()
}

func (s *postgresState) QueueDepth(ctx context.Context) (map[string]int64, error) {
	rows, err := s.Pool.Query(ctx, queueDepthSQL)
	if err != nil {
		return nil, fmt.Errorf("count queue jobs: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count queue jobs: %w", err)
		}
		out[state] = n
	}
	return out, rows.Err()
}

func (s *sqliteState) QueueConsole(ctx context.Context, logger *slog.Logger) (http.Handler, error) {
	return newQueueConsole(ctx, s.q.Client(), logger)
}

func (s *postgresState) QueueConsole(ctx context.Context, logger *slog.Logger) (http.Handler, error) {
	return newQueueConsole(ctx, s.q.Client(), logger)
}
