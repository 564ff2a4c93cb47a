// Package client talks to a libra-deploy server's API on behalf of the
// command-line tools (libra-deploy deploy, logs, ls, ...): uploads by
// digest, deployments and their events. It retries what a retry can fix
// (network errors, 5xx, 429 after its Retry-After) and never a refusal.
package client

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
	"sync/atomic"
	"time"
)

// DefaultURL is the server a client talks to when none is given.
const DefaultURL = "http://localhost:3008"

// Client is an API client for one server and token. Its zero value is not
// usable; use New.
type Client struct {
	base  string
	token string
	http  *http.Client
	// Retries is how many times a request is retried after a network
	// error, a 5xx or a 429 (default 4); Backoff the first wait (doubled
	// each time, default 200 ms).
	Retries int
	Backoff time.Duration
	// requests counts every HTTP request sent, retries included.
	requests atomic.Int64
}

// New returns a client for the server at baseURL with token.
func New(baseURL, token string) *Client {
	return &Client{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		// No overall timeout: a 25 MiB upload or a long build log may
		// take minutes. Each call's context bounds it instead.
		http:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, Proxy: http.ProxyFromEnvironment}},
		Retries: 4,
		Backoff: 200 * time.Millisecond,
	}
}

// Requests returns how many HTTP requests the client has sent.
func (c *Client) Requests() int64 { return c.requests.Load() }

// Error is a refusal from the server, in its unified error format.
type Error struct {
	Status  int
	Code    string          `json:"error"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details,omitempty"`
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
	switch e.Status {
	case http.StatusUnauthorized:
		msg += ": set LIBRA_TOKEN (or --token) to a valid token of this server (libra-deploy token create)"
	case http.StatusForbidden:
		msg += ": the token's org may not do this; check --project and the token"
	}
	return msg
}

// IsStatus reports whether err is a server refusal with this status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// request is one API call; body, when set, is called for each attempt so
// that a retry sends the body again from its start.
type request struct {
	method, path string
	header       http.Header
	body         func() (io.ReadCloser, error)
	size         int64
}

func jsonBody(v any) (func() (io.ReadCloser, error), int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, 0, fmt.Errorf("encode request: %w", err)
	}
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, int64(len(b)), nil
}

// send makes the request, retrying network errors, 5xx and 429. The
// response it returns has a 2xx status; anything else is an *Error.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	wait := c.Backoff
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, r)
		if err == nil {
			return resp, nil
		}
		if !retryable(err) || attempt >= c.Retries || ctx.Err() != nil {
			return nil, err
		}
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// retryable: a network error or a server that failed or asked to wait;
// never a request the server refused (4xx): sending it again cannot help.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func (c *Client) once(ctx context.Context, r request) (*http.Response, error) {
	var body io.ReadCloser
	if r.body != nil {
		b, err := r.body()
		if err != nil {
			return nil, err
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, body)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if r.body != nil {
		req.ContentLength = r.size
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	c.requests.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, c.base+r.path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readError(resp)
}

func readError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" || len(e.Message) > 300 {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// call sends a JSON request (in may be nil) and decodes a JSON answer into
// out (which may be nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	r := request{method: method, path: path, header: http.Header{"Accept": {"application/json"}}}
	if in != nil {
		body, size, err := jsonBody(in)
		if err != nil {
			return err
		}
		r.body, r.size = body, size
		r.header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}
