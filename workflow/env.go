package workflow

import (
	"context"
	"fmt"
	"slices"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
)

// EnvOpener decrypts a project's sealed secrets (internal/secretbox.Box).
type EnvOpener interface {
	Open(sealed, ad string) (string, error)
}

// loadEnv reads the project's build environment as it is when this
// attempt's sandbox step plans the build, opens its secrets and has every log line redact
// them from then on. The variables go only into the sandbox's commands
// (libra.Command.Env), never into this process's environment.
func (ru *run) loadEnv(ctx context.Context) (map[string]string, error) {
	vars, err := ru.r.Store.ListEnv(ctx, ru.d.ProjectID)
	if err != nil {
		return nil, fmt.Errorf("read the project's environment: %w", err)
	}
	env := make(map[string]string, len(vars))
	for _, v := range vars {
		value, err := ru.openEnv(v)
		if err != nil {
			return nil, err
		}
		if v.Secret {
			ru.logs.Redact(secretFragments(value)...)
		}
		env[v.Key] = value
	}
	if len(vars) > 0 {
		ru.logs.Add(libra.StepSandbox, "info", fmt.Sprintf("environment: %s", envSummary(vars)))
	}
	return env, nil
}

// openEnv returns a variable's value in clear. A secret that does not open
// was sealed under another key (LIBRA_SECRET_KEY changed): the user can
// only set it again, so the deployment fails with that advice.
func (ru *run) openEnv(v libra.EnvVar) (string, error) {
	if !v.Secret {
		return v.Value, nil
	}
	if ru.r.Env == nil {
		return "", libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
			"the project has secret %s but this server has no secret key configured (LIBRA_SECRET_KEY)", v.Key))
	}
	value, err := ru.r.Env.Open(v.Value, libra.EnvAD(ru.d.ProjectID, v.Key))
	if err != nil {
		return "", libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
			"secret %s cannot be decrypted with this server's key (was LIBRA_SECRET_KEY changed?): set it again", v.Key))
	}
	return value, nil
}

// secretFragments are the strings to redact for one secret: the value and,
// for a value of several lines (a PEM key), each line long enough to be
// told from ordinary output, since a build's output reaches the log line by
// line and a printed multi-line secret never appears whole in one line.
func secretFragments(value string) []string {
	out := []string{value}
	if !strings.ContainsAny(value, "\r\n") {
		return out
	}
	for _, line := range strings.FieldsFunc(value, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if line = strings.TrimSpace(line); len(line) >= libra.MinSecretBytes {
			out = append(out, line)
		}
	}
	return out
}

// envSummary names the variables a build gets, secrets marked, values never.
func envSummary(vars []libra.EnvVar) string {
	names := make([]string, 0, len(vars))
	for _, v := range vars {
		if v.Secret {
			names = append(names, v.Key+" (secret)")
			continue
		}
		names = append(names, v.Key)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
