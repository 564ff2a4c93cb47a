package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
)

// StatusError classifies a provider's answer that was not a success, the
// way the build step classifies local failures: a rejected key or a
// request the provider refuses for good is permanent (retrying cannot fix
// it) with a message naming the provider and what to check; a 5xx, a 429
// or a timeout is the platform's passing fault, left to the retries.
func StatusError(provider, keyVar, op string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &HTTPError{Code: resp.StatusCode, err: classify(provider, keyVar, op, resp.StatusCode, strings.TrimSpace(string(body)))}
}

// HTTPError is a provider's non-2xx answer; it unwraps to the classified
// error, so libra.IsPermanent sees through it.
type HTTPError struct {
	Code int
	err  error
}

func (e *HTTPError) Error() string { return e.err.Error() }
func (e *HTTPError) Unwrap() error { return e.err }

// IsNotFound reports whether err is the provider's 404.
func IsNotFound(err error) bool {
	var h *HTTPError
	return errors.As(err, &h) && h.Code == http.StatusNotFound
}

func classify(provider, keyVar, op string, code int, detail string) error {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
			"%s rejected the platform's API key (%s %d): check %s", provider, op, code, keyVar))
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return fmt.Errorf("%s: %s: HTTP %d (provider unavailable, will retry): %s", provider, op, code, detail)
	default:
		return libra.Permanent(libra.Errorf(libra.CodeBuildFailed,
			"%s refused %s (HTTP %d): %s; check the %s sandbox configuration", provider, op, code, detail, provider))
	}
}

// TransportError describes a request that got no answer. It keeps the
// caller's own cancellation as it is; anything else (a provider timeout, a
// refused connection) is a platform fault and deliberately does NOT wrap
// the cause: an http.Client timeout satisfies errors.Is(DeadlineExceeded),
// which the build step would report as the user's build timing out.
func TransportError(ctx context.Context, provider, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %s: %w", provider, op, ctx.Err())
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %s: %w", provider, op, err)
	}
	return fmt.Errorf("%s: %s: provider unreachable (will retry): %v", provider, op, err)
}
