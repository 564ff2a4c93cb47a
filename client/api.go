package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// WhoAmI is what the token stands for.
type WhoAmI struct {
	OrgID  string `json:"orgId"`
	UserID string `json:"userId"`
}

// WhoAmI asks the server whose token this is.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var w WhoAmI
	err := c.call(ctx, http.MethodGet, "/whoami", nil, &w)
	return w, err
}

// FileRef is a file of a deployment, by content.
type FileRef struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// DeployRequest is POST /deploy's body as the CLI sends it. Target and
// Alias are sent only when set, so servers without them accept the rest.
type DeployRequest struct {
	ProjectID string    `json:"projectId"`
	OrgID     string    `json:"orgId"`
	UserID    string    `json:"userId"`
	Files     []FileRef `json:"files"`
	Target    string    `json:"target,omitempty"`
	Alias     string    `json:"alias,omitempty"`
}

// Accepted answers a queued deployment.
type Accepted struct {
	DeploymentID string `json:"deploymentId"`
	Status       string `json:"status"`
}

// Deploy queues a deployment.
func (c *Client) Deploy(ctx context.Context, req DeployRequest) (Accepted, error) {
	var a Accepted
	err := c.call(ctx, http.MethodPost, "/deploy", req, &a)
	return a, err
}

// Status is a deployment's state, as GET /deploy-status reports it.
type Status struct {
	DeploymentID string     `json:"deploymentId"`
	Status       string     `json:"status"`
	CurrentStep  string     `json:"currentStep"`
	Progress     int        `json:"progress"`
	LogEntries   []LogEntry `json:"logEntries"`
	Error        string     `json:"error"`
	URL          string     `json:"url"`
	AliasURL     string     `json:"aliasUrl"`
}

// LogEntry is one log line of a deployment.
type LogEntry struct {
	Timestamp time.Time `json:"timestamp"`
	Step      string    `json:"step"`
	Level     string    `json:"level"`
	Message   string    `json:"message"`
}

// Status fetches a deployment's status with its latest log lines.
func (c *Client) Status(ctx context.Context, id string) (Status, error) {
	var s Status
	err := c.call(ctx, http.MethodGet, "/deploy-status?logEntries=true&id="+url.QueryEscape(id), nil, &s)
	return s, err
}

// Final reports whether a deployment status is one it ends in.
func Final(status string) bool {
	return status == "completed" || status == "failed" || status == "cancelled"
}

// Deployment is one line of a project's deployment list.
type Deployment struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"createdAt"`
	URL        string    `json:"url,omitempty"`
	Production bool      `json:"production"`
	Error      string    `json:"error,omitempty"`
}

// Deployments lists a project's retained deployments, newest first, every
// page of them.
func (c *Client) Deployments(ctx context.Context, projectID string) ([]Deployment, error) {
	var all []Deployment
	cursor := ""
	for {
		var page struct {
			Deployments []Deployment `json:"deployments"`
			NextCursor  string       `json:"nextCursor"`
		}
		path := "/projects/" + url.PathEscape(projectID) + "/deployments?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := c.call(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Deployments...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// Raw sends a JSON request and returns the answer's JSON as it is, for the
// commands that print it (rollback, promote, cancel).
func (c *Client) Raw(ctx context.Context, method, path string, in any) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.call(ctx, method, path, in, &out)
	return out, err
}

// Log streams a deployment's full build log into w.
func (c *Client) Log(ctx context.Context, id string, w io.Writer) error {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/deploy-log?id=" + url.QueryEscape(id)})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read build log: %w", err)
	}
	return nil
}
