package daytona

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/libra-deploy/libra-deploy/sandbox/remote"
)

// backend is one Daytona sandbox as remote.Sandbox uses it.
type backend struct {
	p       *Provider
	id      string
	toolbox string // {toolboxProxyUrl}/{sandboxId}
	session string // created with the first command
}

// setToolbox finds the toolbox base; older API versions leave it out of
// the sandbox and answer it on its own endpoint.
func (b *backend) setToolbox(ctx context.Context, proxy string) error {
	if proxy == "" {
		var u struct {
			URL string `json:"url"`
		}
		if err := b.p.c.JSON(ctx, "get toolbox URL", http.MethodGet, b.p.cfg.APIURL+"/sandbox/"+url.PathEscape(b.id)+"/toolbox-proxy-url", nil, &u); err != nil {
			return err
		}
		proxy = u.URL
	}
	if proxy == "" {
		return errors.New("daytona: the sandbox has no toolbox URL")
	}
	b.toolbox = strings.TrimRight(proxy, "/") + "/" + url.PathEscape(b.id)
	return nil
}

// Upload sends one file through files/bulk-upload, whose multipart form
// wants each files[i].path part before its files[i].file part.
func (b *backend) Upload(ctx context.Context, p string, data []byte) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if err := mw.WriteField("files[0].path", p); err != nil {
		return fmt.Errorf("daytona: upload: %w", err)
	}
	fw, err := mw.CreateFormFile("files[0].file", p)
	if err != nil {
		return fmt.Errorf("daytona: upload: %w", err)
	}
	if _, err := fw.Write(data); err != nil {
		return fmt.Errorf("daytona: upload: %w", err)
	}
	if err := mw.Close(); err != nil {
		return fmt.Errorf("daytona: upload: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, b.p.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, b.toolbox+"/files/bulk-upload", &body)
	if err != nil {
		return fmt.Errorf("daytona: upload: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := b.p.c.Send(ctx, "upload files", req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Download streams one file. The request is bounded by the caller's
// context: an archive of a large build can take longer than one request.
func (b *backend) Download(ctx context.Context, p string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.toolbox+"/files/download?path="+url.QueryEscape(p), nil)
	if err != nil {
		return nil, fmt.Errorf("daytona: download: %w", err)
	}
	resp, err := b.p.c.Send(ctx, "download file", req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Delete deletes the sandbox; one already gone counts as deleted.
func (b *backend) Delete(ctx context.Context) error {
	err := b.p.c.JSON(ctx, "delete sandbox", http.MethodDelete, b.p.cfg.APIURL+"/sandbox/"+url.PathEscape(b.id), nil, nil)
	if remote.IsNotFound(err) {
		return nil
	}
	return err
}

// Exec runs script as an asynchronous session command and polls its logs,
// writing what is new each time, until it has an exit code.
func (b *backend) Exec(ctx context.Context, script string, output io.Writer) (int, error) {
	if err := b.ensureSession(ctx); err != nil {
		return -1, err
	}
	var started struct {
		CmdID string `json:"cmdId"`
	}
	req := map[string]any{"command": script, "runAsync": true}
	if err := b.call(ctx, "run command", http.MethodPost, "/process/session/"+b.session+"/exec", req, &started); err != nil {
		return -1, err
	}
	if started.CmdID == "" {
		return -1, errors.New("daytona: run command: the answer has no cmdId")
	}
	return b.follow(ctx, started.CmdID, output)
}

func (b *backend) ensureSession(ctx context.Context) error {
	if b.session != "" {
		return nil
	}
	id := "libra-" + rand.Text()[:16]
	if err := b.call(ctx, "create session", http.MethodPost, "/process/session", map[string]string{"sessionId": id}, nil); err != nil {
		return err
	}
	b.session = id
	return nil
}

// follow polls one command until it exited, passing new output along.
func (b *backend) follow(ctx context.Context, cmdID string, output io.Writer) (int, error) {
	base := "/process/session/" + b.session + "/command/" + url.PathEscape(cmdID)
	seen := 0
	for {
		var cmd struct {
			ExitCode *int `json:"exitCode"`
		}
		if err := b.call(ctx, "get command", http.MethodGet, base, nil, &cmd); err != nil {
			return -1, err
		}
		var logs struct {
			Output string `json:"output"`
		}
		if err := b.call(ctx, "get command logs", http.MethodGet, base+"/logs", nil, &logs); err != nil {
			return -1, err
		}
		if len(logs.Output) > seen {
			_, _ = output.Write([]byte(logs.Output[seen:]))
			seen = len(logs.Output)
		}
		if cmd.ExitCode != nil {
			return *cmd.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("daytona: command: %w", ctx.Err())
		case <-time.After(b.p.cfg.PollInterval):
		}
	}
}

// call is one toolbox request.
func (b *backend) call(ctx context.Context, op, method, path string, body, out any) error {
	return b.p.c.JSON(ctx, op, method, b.toolbox+path, body, out)
}
