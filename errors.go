package libra

import (
	"errors"
	"fmt"
)

// Error codes: stable strings that clients may switch on. They appear in the
// "error" field of every error response.
const (
	CodeValidation         = "VALIDATION_ERROR"
	CodeUnauthorized       = "UNAUTHORIZED"
	CodeForbidden          = "FORBIDDEN"
	CodeNotFound           = "NOT_FOUND"
	CodeMethodNotAllowed   = "METHOD_NOT_ALLOWED"
	CodeProjectNotFound    = "PROJECT_NOT_FOUND"
	CodeProjectExists      = "PROJECT_EXISTS"
	CodeDeploymentNotFound = "DEPLOYMENT_NOT_FOUND"
	CodeDomainTaken        = "DOMAIN_TAKEN"
	CodeConflict           = "CONFLICT"
	CodeQuotaExceeded      = "QUOTA_EXCEEDED"
	CodeRateLimited        = "RATE_LIMITED"
	CodePayloadTooLarge    = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMedia   = "UNSUPPORTED_MEDIA_TYPE"
	CodeInternal           = "INTERNAL_ERROR"
	CodeUnavailable        = "SERVICE_UNAVAILABLE"
	CodeBuildFailed        = "BUILD_FAILED"
)

// Error is an error meant for the client: a stable code and a message that is
// safe to show. Anything that is not an *Error is reported to clients as
// INTERNAL_ERROR with a generic message, so internal paths never leak.
type Error struct {
	Code    string
	Message string
	Details any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, or CodeInternal.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// permanentError marks a failure that a retry cannot fix: the input, the
// project or the user's own build is at fault.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as a failure that must not be retried. Errors not marked
// are treated as infrastructure faults (disk, database, sandbox start) and are
// retried: a wrong "transient" costs a few seconds, a wrong "permanent" loses
// a deployment that would have worked.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or any error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// ErrNotFound is returned by stores for a missing row.
var ErrNotFound = errors.New("not found")

// ErrInterrupted is returned by a deployment run that stopped because the
// service is shutting down. The deployment is not failed: its job is handed
// back to the queue and runs again, from the start, on the next worker.
var ErrInterrupted = errors.New("interrupted by shutdown")
