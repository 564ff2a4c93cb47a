package daytona

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/libra-deploy/libra-deploy/sandbox/remote"
)

const (
	providerName = "daytona"
	keyVar       = "DAYTONA_API_KEY"
)

// client sends authenticated JSON requests. The key goes only into the
// Authorization header of requests to the configured API and toolbox.
type client struct {
	http    *http.Client
	key     string
	timeout time.Duration // one request's, not a command's run
}

// do sends method url with body as JSON (when not nil) and decodes a 2xx
// answer into out (when not nil).
func (c *client) do(ctx context.Context, op, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("daytona: %s: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("daytona: %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.send(ctx, op, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return remote.TransportError(ctx, providerName, op, fmt.Errorf("decode the answer: %w", err))
	}
	return nil
}

// send adds the key and turns a non-2xx answer into a classified error.
// ctx is the caller's: a request's own timeout is the provider's fault.
func (c *client) send(ctx context.Context, op string, req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, remote.TransportError(ctx, providerName, op, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, remote.StatusError(providerName, keyVar, op, resp)
	}
	return resp, nil
}
