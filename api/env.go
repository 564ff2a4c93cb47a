package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
)

// A project's build environment. Secret values are write-only: they are
// sealed before they reach the store and never leave it again through the
// API, nor go into any log line.

// Sealer encrypts a secret value bound to ad (internal/secretbox.Box).
type Sealer interface {
	Seal(plaintext, ad string) (string, error)
}

// EnvItem is one variable as the API shows it.
type EnvItem struct {
	Key    string `json:"key"`
	Secret bool   `json:"secret" doc:"A secret's value is never returned."`
	// A pointer, so that a secret has no value field at all rather than "".
	Value     *string   `json:"value,omitempty" doc:"The value; absent for a secret."`
	UpdatedAt time.Time `json:"updatedAt"`
}

// EnvList is a project's build environment.
type EnvList struct {
	ProjectID string    `json:"projectId"`
	Variables []EnvItem `json:"variables" doc:"Ordered by key."`
}

type envListOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         EnvList
}

type envKeyPath struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
	Key       string `path:"key" maxLength:"256" doc:"The variable's name: letters, digits and underscores, not starting with a digit."`
}

// envPutInput repeats envKeyPath's fields: Huma reads the parameters of
// the input struct itself, not of one embedded in it.
type envPutInput struct {
	ProjectID string `path:"projectId" maxLength:"128" doc:"The project's id."`
	Key       string `path:"key" maxLength:"256" doc:"The variable's name: letters, digits and underscores, not starting with a digit."`
	Body      struct {
		Value  string `json:"value" doc:"The value, at most 16 KiB; a secret's at least 8 bytes."`
		Secret bool   `json:"secret,omitempty" doc:"Write-only: encrypted at rest, never returned, redacted from every log."`
	}
}

type envItemOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         EnvItem
}

func envItem(v libra.EnvVar) EnvItem {
	item := EnvItem{Key: v.Key, Secret: v.Secret, UpdatedAt: v.UpdatedAt}
	if !v.Secret {
		item.Value = &v.Value
	}
	return item
}

func (s *server) listEnv(ctx context.Context, in *projectPath) (*envListOutput, error) {
	p, err := s.projectOfOrg(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	vars, err := s.cfg.Store.ListEnv(ctx, p.ID)
	if err != nil {
		return nil, clientError(ctx, "list environment", fmt.Errorf("environment of %s: %w", p.ID, err))
	}
	out := EnvList{ProjectID: p.ID, Variables: make([]EnvItem, 0, len(vars))}
	for _, v := range vars {
		out.Variables = append(out.Variables, envItem(v))
	}
	return &envListOutput{CacheControl: "no-store", Body: out}, nil
}

func (s *server) putEnv(ctx context.Context, in *envPutInput) (*envItemOutput, error) {
	v, err := s.checkEnvPut(ctx, in)
	if err != nil {
		return nil, err
	}
	if v.Secret {
		if v.Value, err = s.cfg.EnvSealer.Seal(v.Value, libra.EnvAD(in.ProjectID, v.Key)); err != nil {
			return nil, clientError(ctx, "seal secret", fmt.Errorf("seal %s: %w", v.Key, err))
		}
	}
	if err := s.cfg.Store.PutEnv(ctx, in.ProjectID, v); err != nil {
		if errors.Is(err, libra.ErrNotFound) {
			return nil, newError(http.StatusNotFound, libra.CodeProjectNotFound, fmt.Sprintf("project %q not found", in.ProjectID), nil)
		}
		return nil, clientError(ctx, "set environment variable", fmt.Errorf("set %s of %s: %w", v.Key, in.ProjectID, err))
	}
	loggerFrom(ctx).Info("environment variable set", "project_id", in.ProjectID, "key", v.Key, "secret", v.Secret)
	return &envItemOutput{CacheControl: "no-store", Body: envItem(v)}, nil
}

// checkEnvPut validates a PUT before anything is written.
func (s *server) checkEnvPut(ctx context.Context, in *envPutInput) (libra.EnvVar, error) {
	if _, err := s.projectOfOrg(ctx, in.ProjectID); err != nil {
		return libra.EnvVar{}, err
	}
	if err := libra.ValidateEnvKey(in.Key); err != nil {
		return libra.EnvVar{}, clientError(ctx, "environment key", err)
	}
	if err := libra.ValidateEnvValue(in.Body.Value, in.Body.Secret); err != nil {
		return libra.EnvVar{}, clientError(ctx, "environment value", err)
	}
	if in.Body.Secret && s.cfg.EnvSealer == nil {
		return libra.EnvVar{}, newError(http.StatusServiceUnavailable, libra.CodeUnavailable, "this server has no secret key configured (LIBRA_SECRET_KEY)", nil)
	}
	return libra.EnvVar{Key: in.Key, Value: in.Body.Value, Secret: in.Body.Secret, UpdatedAt: libra.Now()}, nil
}

func (s *server) deleteEnv(ctx context.Context, in *envKeyPath) (*deletedOutput, error) {
	p, err := s.projectOfOrg(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	err = s.cfg.Store.DeleteEnv(ctx, p.ID, in.Key)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, newError(http.StatusNotFound, libra.CodeNotFound, fmt.Sprintf("project %s has no environment variable %q", p.ID, in.Key), nil)
	}
	if err != nil {
		return nil, clientError(ctx, "delete environment variable", fmt.Errorf("delete %s of %s: %w", in.Key, p.ID, err))
	}
	loggerFrom(ctx).Info("environment variable deleted", "project_id", p.ID, "key", in.Key)
	return &deletedOutput{Body: Deleted{Success: true, Message: "environment variable " + in.Key + " deleted", Timestamp: libra.Now()}}, nil
}

const envDoc = " Builds see the variables in their install and build commands; a change applies to deployments whose build starts after it. " +
	"Another org's project is 404."

// registerEnv adds the routes of this file.
func (s *server) registerEnv(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "listProjectEnv", Method: http.MethodGet, Path: "/projects/{projectId}/env",
		Summary:     "List a project's build environment",
		Description: "Every variable with its name, whether it is secret and when it changed; plain values are shown, secret ones never." + envDoc,
		Tags:        []string{"Projects"}, Security: tokenSecurity, Middlewares: huma.Middlewares{s.authenticate},
		Errors: []int{401, 404, 429},
	}, s.listEnv)
	huma.Register(api, huma.Operation{
		OperationID: "putProjectEnv", Method: http.MethodPut, Path: "/projects/{projectId}/env/{key}",
		Summary: "Set a build environment variable",
		Description: "Creates or replaces a variable. A secret is encrypted at rest (AES-256-GCM), never returned and redacted from every log. " +
			"Names the build sandbox sets (PATH, HOME, NODE_OPTIONS, proxies, ...) and names starting with LIBRA_ or LD_ are refused; " +
			"at most 64 variables of at most 16 KiB; a secret has at least 8 bytes." + envDoc,
		Tags: []string{"Projects"}, Security: tokenSecurity, Middlewares: huma.Middlewares{s.authenticate, requireJSON},
		// JSON may spell each byte of a value as a six-byte \u escape.
		MaxBodyBytes: 6*libra.MaxEnvValueBytes + 4096,
		Errors:       []int{400, 401, 404, 413, 415, 429, 503},
	}, s.putEnv)
	huma.Register(api, huma.Operation{
		OperationID: "deleteProjectEnv", Method: http.MethodDelete, Path: "/projects/{projectId}/env/{key}",
		Summary:     "Delete a build environment variable",
		Description: "Removes a variable." + envDoc,
		Tags:        []string{"Projects"}, Security: tokenSecurity, Middlewares: huma.Middlewares{s.authenticate},
		Errors: []int{401, 404, 429},
	}, s.deleteEnv)
}
