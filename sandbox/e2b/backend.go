package e2b

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/libra-deploy/libra-deploy/sandbox/remote"
)

// backend is one E2B sandbox as remote.Sandbox uses it.
type backend struct {
	p     *Provider
	id    string
	token string // envd's access token, from the create answer
	envd  string

	stopOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
}

// startKeepAlive renews the sandbox's timeout at a third of it, so that a
// build longer than the timeout keeps its sandbox while one this service
// lost (a crash) still expires soon after.
func (b *backend) startKeepAlive() {
	// Stopping cancels a renewal under way, so that Delete never waits
	// for a slow one.
	ctx, cancel := context.WithCancel(context.Background())
	b.stop, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		t := time.NewTicker(max(b.p.cfg.Timeout/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// A failed renewal is retried at the next tick; the
				// sandbox has two more thirds of its timeout to live.
				_ = b.p.api(ctx, "extend sandbox timeout", http.MethodPost,
					"/sandboxes/"+url.PathEscape(b.id)+"/timeout", map[string]int{"timeout": b.p.timeoutSeconds()}, nil)
			}
		}
	}()
}

// Delete kills the sandbox; one already gone counts as killed.
func (b *backend) Delete(ctx context.Context) error {
	b.stopOnce.Do(func() {
		if b.stop != nil {
			b.stop()
			<-b.done
		}
	})
	err := b.p.api(ctx, "kill sandbox", http.MethodDelete, "/sandboxes/"+url.PathEscape(b.id), nil, nil)
	if remote.IsNotFound(err) {
		return nil
	}
	return err
}

// envdRequest is a request to this sandbox's envd. The E2b-Sandbox-*
// headers let a shared E2B_SANDBOX_URL route it, as E2B's clients do.
func (b *backend) envdRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, b.envd+path, body)
	if err != nil {
		return nil, fmt.Errorf("e2b: %w", err)
	}
	if b.token != "" {
		req.Header.Set("X-Access-Token", b.token)
	}
	req.Header.Set("E2b-Sandbox-Id", b.id)
	req.Header.Set("E2b-Sandbox-Port", envdPort)
	return req, nil
}

func (b *backend) filesPath(p string) string {
	return "/files?" + url.Values{"path": {p}, "username": {b.p.cfg.User}}.Encode()
}

// Upload writes one file through envd's /files.
func (b *backend) Upload(ctx context.Context, p string, data []byte) error {
	rctx, cancel := context.WithTimeout(ctx, b.p.cfg.RequestTimeout)
	defer cancel()
	req, err := b.envdRequest(rctx, http.MethodPost, b.filesPath(p), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := b.p.envd.Send(ctx, "upload file", req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Download streams one file from envd's /files.
func (b *backend) Download(ctx context.Context, p string) (io.ReadCloser, error) {
	req, err := b.envdRequest(ctx, http.MethodGet, b.filesPath(p), nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.p.envd.Send(ctx, "download file", req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Exec starts bash with script through process.Process/Start and copies
// the streamed output until the end event.
func (b *backend) Exec(ctx context.Context, script string, output io.Writer) (int, error) {
	var body bytes.Buffer
	start := startRequest{Process: processConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", script}}}
	if err := writeEnvelope(&body, 0, start); err != nil {
		return -1, err
	}
	req, err := b.envdRequest(ctx, http.MethodPost, "/process.Process/Start", &body)
	if err != nil {
		return -1, err
	}
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Protocol-Version", "1")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(b.p.cfg.User+":")))
	resp, err := b.p.envd.Send(ctx, "start process", req)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	code, err := readProcessStream(resp.Body, output)
	if err != nil && ctx.Err() != nil {
		return -1, fmt.Errorf("e2b: process: %w", ctx.Err())
	}
	return code, err
}

// errNoEnd is a stream that closed before the process ended: envd or the
// sandbox went away, the platform's fault.
var errNoEnd = errors.New("e2b: the process stream ended before the process did (will retry)")

// readProcessStream reads StartResponse envelopes until the end-of-stream
// one, returning the end event's exit code.
func readProcessStream(r io.Reader, output io.Writer) (int, error) {
	code, ended := -1, false
	for {
		flags, payload, err := readEnvelope(r)
		if errors.Is(err, io.EOF) {
			return -1, errNoEnd
		}
		if err != nil {
			return -1, fmt.Errorf("e2b: process stream: %v (will retry)", err)
		}
		if flags&flagEndStream != 0 {
			return finishStream(payload, code, ended)
		}
		var msg startResponse
		if err := json.Unmarshal(payload, &msg); err != nil {
			return -1, fmt.Errorf("e2b: process stream: decode: %v (will retry)", err)
		}
		ev := msg.Event
		switch {
		case ev.Data != nil:
			_, _ = output.Write(ev.Data.Stdout)
			_, _ = output.Write(ev.Data.Stderr)
		case ev.End != nil:
			code, ended = int(ev.End.ExitCode), true
			if !ev.End.Exited {
				code = -1 // killed by a signal: no exit code
			}
		}
	}
}

func finishStream(payload []byte, code int, ended bool) (int, error) {
	var end endStream
	if err := json.Unmarshal(payload, &end); err != nil {
		return -1, fmt.Errorf("e2b: process stream: decode the end: %v (will retry)", err)
	}
	if end.Error != nil {
		return -1, fmt.Errorf("e2b: process: %s (will retry)", end.Error.Error())
	}
	if !ended {
		return -1, errNoEnd
	}
	return code, nil
}
