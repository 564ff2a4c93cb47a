package cloudflare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// envelope is the body of every Cloudflare v4 API answer.
type envelope struct {
	Success bool            `json:"success"`
	Errors  []apiMessage    `json:"errors"`
	Result  json.RawMessage `json:"result"`
}

type apiMessage struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// request is one API call; body is rebuilt for every try, since a retried
// request needs its body again.
type request struct {
	method, path string
	// bearer overrides the API token (the assets upload takes the upload
	// session's JWT instead).
	bearer string
	body   func() (io.Reader, string, error)
}

// statusError is an answer that was not a success.
type statusError struct {
	status int
	errors []apiMessage
}

func (e *statusError) Error() string {
	msgs := make([]string, 0, len(e.errors))
	for _, m := range e.errors {
		msgs = append(msgs, fmt.Sprintf("%d %s", m.Code, m.Message))
	}
	if len(msgs) == 0 {
		return fmt.Sprintf("HTTP %d", e.status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, strings.Join(msgs, "; "))
}

// retryable: Cloudflare's own faults and its rate limit pass with time.
func (e *statusError) retryable() bool {
	return e.status >= 500 || e.status == http.StatusTooManyRequests
}

// call sends req, retrying Cloudflare's faults (5xx, 429, timeouts, broken
// connections) with a growing pause, and decodes the result into out (may
// be nil). It returns the final HTTP status with any error.
func (t *Target) call(ctx context.Context, req request, out any) (int, error) {
	var last error
	for attempt := 1; ; attempt++ {
		status, retryAfter, err := t.once(ctx, req, out)
		if err == nil {
			return status, nil
		}
		last = err
		var se *statusError
		if errors.As(err, &se) && !se.retryable() {
			return status, err
		}
		if ctx.Err() != nil || attempt >= t.cfg.MaxAttempts {
			return status, fmt.Errorf("%s %s: %w (after %d tries)", req.method, req.path, last, attempt)
		}
		if err := sleep(ctx, t.backoff(attempt, retryAfter)); err != nil {
			return status, fmt.Errorf("%s %s: %w", req.method, req.path, last)
		}
	}
}

// backoff doubles from RetryBase, capped, or follows Retry-After when
// Cloudflare gave one that is not absurd.
func (t *Target) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := t.cfg.RetryBase << (attempt - 1)
	if retryAfter > 0 && retryAfter < 30*time.Second {
		d = retryAfter
	}
	return min(d, 10*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// once sends one try of req.
func (t *Target) once(ctx context.Context, req request, out any) (int, time.Duration, error) {
	hreq, err := t.newRequest(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	resp, err := t.cfg.HTTPClient.Do(hreq)
	if err != nil {
		// The URL holds no secret, but the error is logged: keep it short.
		return 0, 0, fmt.Errorf("cloudflare API unreachable: %w", err)
	}
	defer resp.Body.Close()
	retryAfter := parseRetryAfter(resp.Header.Get("Retry-After"))
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, retryAfter, fmt.Errorf("read cloudflare answer: %w", err)
	}
	var env envelope
	jerr := json.Unmarshal(b, &env)
	if resp.StatusCode >= 300 || jerr != nil || !env.Success {
		status := resp.StatusCode
		if status < 300 {
			// Cloudflare said OK and sent no success: its fault.
			status = http.StatusBadGateway
		}
		return resp.StatusCode, retryAfter, &statusError{status: status, errors: env.Errors}
	}
	if out != nil && len(env.Result) > 0 && string(env.Result) != "null" {
		if err := json.Unmarshal(env.Result, out); err != nil {
			return resp.StatusCode, 0, fmt.Errorf("decode cloudflare result of %s: %w", req.path, err)
		}
	}
	return resp.StatusCode, 0, nil
}

// maxResponseBytes bounds what one answer may make us read.
const maxResponseBytes = 8 << 20

func (t *Target) newRequest(ctx context.Context, req request) (*http.Request, error) {
	var (
		body        io.Reader = http.NoBody
		contentType string
	)
	if req.body != nil {
		var err error
		if body, contentType, err = req.body(); err != nil {
			return nil, err
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, t.cfg.APIBase+req.path, body)
	if err != nil {
		return nil, fmt.Errorf("build cloudflare request: %w", err)
	}
	bearer := t.cfg.Token
	if req.bearer != "" {
		bearer = req.bearer
	}
	hreq.Header.Set("Authorization", "Bearer "+bearer)
	if contentType != "" {
		hreq.Header.Set("Content-Type", contentType)
	}
	hreq.Header.Set("User-Agent", "libra-deploy")
	return hreq, nil
}

func parseRetryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

func jsonBody(v any) func() (io.Reader, string, error) {
	return func() (io.Reader, string, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, "", fmt.Errorf("encode cloudflare request: %w", err)
		}
		return bytes.NewReader(b), "application/json", nil
	}
}

// classify turns a failed call into what the queue should do with the
// deployment: credentials Cloudflare refuses fail it at once with a message
// an operator can act on; Cloudflare's own faults stay retryable; anything
// else Cloudflare rejected is permanent, with Cloudflare's words.
func classify(what string, err error) error {
	var se *statusError
	if !errors.As(err, &se) {
		return libra.Errorf(libra.CodeUnavailable, "Cloudflare could not be reached to %s: %s", what, shortCause(err))
	}
	switch {
	case se.status == http.StatusUnauthorized || se.status == http.StatusForbidden || authCode(se.errors):
		return libra.Permanent(libra.Errorf(libra.CodeUnavailable,
			"Cloudflare refused the service's credentials (%s) while trying to %s: check CLOUDFLARE_API_TOKEN (it needs Workers Scripts: Edit) and CLOUDFLARE_ACCOUNT_ID", se, what))
	case se.retryable():
		return libra.Errorf(libra.CodeUnavailable, "Cloudflare failed to %s: %s", what, shortCause(err))
	default:
		return libra.Permanent(libra.Errorf(libra.CodeBuildFailed, "Cloudflare rejected the request to %s: %s", what, se))
	}
}

// authCode spots Cloudflare's authentication failures that arrive as 400
// (a malformed Authorization header).
func authCode(msgs []apiMessage) bool {
	for _, m := range msgs {
		if m.Code == 10000 || m.Code == 6003 || m.Code == 6111 || m.Code == 9106 || m.Code == 9109 {
			return true
		}
	}
	return false
}

func shortCause(err error) string {
	var se *statusError
	if errors.As(err, &se) {
		return se.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return "network error"
}
