package libra

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of a project's build environment. They keep the whole environment
// (at most MaxEnvVars × MaxEnvValueBytes = 1 MiB) well under what execve
// accepts (ARG_MAX, 2 MiB with the default stack), so a build always starts.
const (
	MaxEnvVars       = 64
	MaxEnvValueBytes = 16 << 10
	MaxEnvKeyBytes   = 256
	// MinSecretBytes: a secret is redacted from logs by its value, and a
	// very short value would blank out ordinary words in every line (and
	// could be found by anyone watching which words vanish).
	MinSecretBytes = 8
)

// EnvVar is one variable of a project's build environment. Value is what
// the store keeps: the plain value, or for a secret the sealed (encrypted)
// value, which only the service's key opens.
type EnvVar struct {
	Key       string
	Value     string
	Secret    bool
	UpdatedAt time.Time
}

// EnvStore keeps each project's build environment. The API checks the
// project's org before calling it.
type EnvStore interface {
	// ListEnv returns the project's variables ordered by key; an empty
	// slice when it has none.
	ListEnv(ctx context.Context, projectID string) ([]EnvVar, error)
	// PutEnv sets a variable, replacing one of the same key. A project
	// that already has MaxEnvVars other variables gets a VALIDATION_ERROR
	// and nothing changes; ErrNotFound when the project does not exist.
	PutEnv(ctx context.Context, projectID string, v EnvVar) error
	// DeleteEnv removes a variable; ErrNotFound when there was none.
	DeleteEnv(ctx context.Context, projectID, key string) error
}

var envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedEnv are names the build sandbox sets itself or that change how it
// works: where programs and the home are, the proxy that confines the
// install's network, node's heap limit and CA bundle, the package caches.
// Compared without case, since some tools read either case.
var reservedEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TMPDIR", "CI", "PWD", "OLDPWD", "IFS",
	"ENV", "BASH_ENV", "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "XDG_CACHE_HOME", "BUN_INSTALL_CACHE_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY",
	"npm_config_cache", "npm_config_proxy", "npm_config_https_proxy", "npm_config_noproxy",
	"npm_config_update_notifier",
}

// reservedEnvPrefixes: LIBRA_ is the platform's own configuration, which
// must never look as if a project could set it; LD_ steers the dynamic
// loader of every program the sandbox starts.
var reservedEnvPrefixes = []string{"LIBRA_", "LD_"}

// ValidateEnvKey checks a variable's name: a POSIX name (letters, digits
// and underscores, not starting with a digit) that the sandbox does not
// reserve.
func ValidateEnvKey(key string) error {
	if len(key) > MaxEnvKeyBytes || !envKeyPattern.MatchString(key) {
		return Errorf(CodeValidation, "environment variable name %q: use letters, digits and underscores, not starting with a digit, at most %d characters", key, MaxEnvKeyBytes)
	}
	for _, r := range reservedEnv {
		if strings.EqualFold(key, r) {
			return Errorf(CodeValidation, "environment variable %s is set by the build sandbox and cannot be changed", key)
		}
	}
	for _, p := range reservedEnvPrefixes {
		if len(key) >= len(p) && strings.EqualFold(key[:len(p)], p) {
			return Errorf(CodeValidation, "environment variable names starting with %s are reserved", p)
		}
	}
	return nil
}

// ValidateEnvValue checks a value: UTF-8 without NUL (an environment
// cannot hold one), at most MaxEnvValueBytes, and for a secret at least
// MinSecretBytes.
func ValidateEnvValue(value string, secret bool) error {
	switch {
	case len(value) > MaxEnvValueBytes:
		return Errorf(CodeValidation, "the value is %d bytes; at most %d", len(value), MaxEnvValueBytes)
	case strings.ContainsRune(value, 0) || !utf8.ValidString(value):
		return Errorf(CodeValidation, "the value must be UTF-8 text without NUL characters")
	case secret && len(value) < MinSecretBytes:
		return Errorf(CodeValidation, "a secret value must be at least %d bytes: shorter ones cannot be redacted from logs reliably", MinSecretBytes)
	}
	return nil
}

// EnvAD is the additional data a secret of a project is sealed with: the
// sealed value opens only under the same project and name.
func EnvAD(projectID, key string) string { return fmt.Sprintf("libra-env\x00%s\x00%s", projectID, key) }
