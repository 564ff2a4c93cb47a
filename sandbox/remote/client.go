package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client sends a provider's HTTP requests and turns what fails into the
// classified errors of StatusError and TransportError.
type Client struct {
	HTTP     *http.Client
	Provider string        // names the provider in errors
	KeyVar   string        // the variable holding its key, named when the key is rejected
	Timeout  time.Duration // bounds one JSON request, not a command's run
	// Authorize adds the credential to each request; nil adds none. The
	// key goes only where the provider's client sets it.
	Authorize func(*http.Request)
}

// JSON sends method url with body as JSON (when not nil) and decodes a 2xx
// answer into out (when not nil).
func (c *Client) JSON(ctx context.Context, op, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", c.Provider, op, err)
		}
		rd = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", c.Provider, op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Send(ctx, op, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return TransportError(ctx, c.Provider, op, fmt.Errorf("decode the answer: %w", err))
	}
	return nil
}

// Send authorizes req, sends it and turns a failed request or a non-2xx
// answer into a classified error. ctx is the caller's (req's may be
// narrower): a request's own timeout is the provider's fault.
func (c *Client) Send(ctx context.Context, op string, req *http.Request) (*http.Response, error) {
	if c.Authorize != nil {
		c.Authorize(req)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, TransportError(ctx, c.Provider, op, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, StatusError(c.Provider, c.KeyVar, op, resp)
	}
	return resp, nil
}
