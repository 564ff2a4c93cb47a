package e2b

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/libra-deploy/libra-deploy/sandbox/remote"
)

// api sends one control-plane request. The key goes only into the
// X-API-Key header of requests to E2B_API_URL.
func (p *Provider) api(ctx context.Context, op, method, path string, body, out any) error {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("e2b: %s: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(rctx, method, p.cfg.APIURL+path, rd)
	if err != nil {
		return fmt.Errorf("e2b: %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-API-Key", p.cfg.APIKey)
	resp, err := p.send(ctx, op, req)
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

// send turns a failed request or a non-2xx answer into a classified error.
// ctx is the caller's: a request's own timeout is the provider's fault.
func (p *Provider) send(ctx context.Context, op string, req *http.Request) (*http.Response, error) {
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, remote.TransportError(ctx, providerName, op, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, remote.StatusError(providerName, keyVar, op, resp)
	}
	return resp, nil
}
