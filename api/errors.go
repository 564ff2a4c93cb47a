package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	libra "github.com/libra-deploy/libra-deploy"
)

// CodeRequestTimeout is sent when a client is too slow to send its body. It is
// the only code the root package has no name for: no other layer produces it.
const CodeRequestTimeout = "REQUEST_TIMEOUT"

// CodeRangeNotSatisfiable is sent when a Range asks for bytes past the end
// of a build log; only GET /deploy-log answers Range requests.
const CodeRangeNotSatisfiable = "RANGE_NOT_SATISFIABLE"

// ErrorResponse is the body of every error the API sends, whatever produced
// it: a handler, a middleware, Huma's own validation, the router or a panic.
type ErrorResponse struct {
	Success   bool      `json:"success" doc:"Always false."`
	Code      string    `json:"error" example:"VALIDATION_ERROR" doc:"Stable machine-readable code, e.g. VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, PROJECT_NOT_FOUND, DEPLOYMENT_NOT_FOUND, QUOTA_EXCEEDED, RATE_LIMITED, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, INTERNAL_ERROR."`
	Message   string    `json:"message" doc:"Human-readable explanation, safe to show to users."`
	Details   any       `json:"details,omitempty" doc:"What exactly was wrong; for validation errors a list of {field, message}."`
	Timestamp time.Time `json:"timestamp"`

	status  int
	headers http.Header
}

// FieldError names one problem with the request.
type FieldError struct {
	Field   string `json:"field,omitempty" doc:"Where the problem is, e.g. initFiles[3].path or query.id."`
	Message string `json:"message"`
}

func (e *ErrorResponse) Error() string { return e.Code + ": " + e.Message }

// GetStatus lets Huma send the status that belongs to the code.
func (e *ErrorResponse) GetStatus() int { return e.status }

// GetHeaders lets Huma copy e.g. Retry-After onto the response.
func (e *ErrorResponse) GetHeaders() http.Header {
	if e.headers == nil {
		e.headers = http.Header{}
	}
	return e.headers
}

func newError(status int, code, msg string, details any) *ErrorResponse {
	return &ErrorResponse{Code: code, Message: msg, Details: details, Timestamp: libra.Now(), status: status}
}

// codeStatus maps every code the service can produce to its HTTP status.
var codeStatus = map[string]int{
	libra.CodeValidation:         http.StatusBadRequest,
	libra.CodeMissingFiles:       http.StatusBadRequest,
	libra.CodeUnauthorized:       http.StatusUnauthorized,
	libra.CodeForbidden:          http.StatusForbidden,
	libra.CodeNotFound:           http.StatusNotFound,
	libra.CodeMethodNotAllowed:   http.StatusMethodNotAllowed,
	libra.CodeProjectNotFound:    http.StatusNotFound,
	libra.CodeProjectExists:      http.StatusConflict,
	libra.CodeDeploymentNotFound: http.StatusNotFound,
	libra.CodeDomainTaken:        http.StatusConflict,
	libra.CodeConflict:           http.StatusConflict,
	libra.CodeDeploymentFinished: http.StatusConflict,
	libra.CodeQuotaExceeded:      http.StatusTooManyRequests,
	libra.CodeRateLimited:        http.StatusTooManyRequests,
	libra.CodePayloadTooLarge:    http.StatusRequestEntityTooLarge,
	libra.CodeUnsupportedMedia:   http.StatusUnsupportedMediaType,
	libra.CodeInternal:           http.StatusInternalServerError,
	libra.CodeUnavailable:        http.StatusServiceUnavailable,
	// A failed build is reported through deploy-status, not as an HTTP
	// error; should a store ever return it to a request, it is the client's
	// input that failed, not the service.
	libra.CodeBuildFailed:   http.StatusBadRequest,
	CodeRequestTimeout:      http.StatusRequestTimeout,
	CodeRangeNotSatisfiable: http.StatusRequestedRangeNotSatisfiable,
}

// StatusForCode returns the HTTP status the API sends for an error code;
// unknown codes are treated as internal errors.
func StatusForCode(code string) int {
	if s, ok := codeStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// codeForStatus names errors that only carry a status: Huma's own and the
// router's.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return libra.CodeValidation
	case http.StatusUnauthorized:
		return libra.CodeUnauthorized
	case http.StatusForbidden:
		return libra.CodeForbidden
	case http.StatusNotFound:
		return libra.CodeNotFound
	case http.StatusMethodNotAllowed:
		return libra.CodeMethodNotAllowed
	case http.StatusRequestTimeout:
		return CodeRequestTimeout
	case http.StatusConflict:
		return libra.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return libra.CodePayloadTooLarge
	case http.StatusUnsupportedMediaType:
		return libra.CodeUnsupportedMedia
	case http.StatusTooManyRequests:
		return libra.CodeRateLimited
	case http.StatusServiceUnavailable:
		return libra.CodeUnavailable
	}
	if status >= 400 && status < 500 {
		return libra.CodeValidation
	}
	return libra.CodeInternal
}

const internalMessage = "internal error; the request id identifies it in the server log"

var bodyTooLargeMessage = fmt.Sprintf("request body is larger than the %d MiB limit", libra.MaxBodyBytes>>20)

func init() {
	// encoding/json matches field names case-insensitively, and so does
	// Huma's validator unless told otherwise: "initfiles" would then be taken
	// for initFiles. The original JavaScript service, and clients written
	// against it, are case-sensitive; an unknown casing is an unknown field.
	huma.ValidateStrictCasing = true

	// Huma builds every error it sends itself (validation, body too large,
	// unparsable JSON, unknown content type) through these two hooks; replacing
	// them is the one way to make those errors come out in the service's format.
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		return fromHuma(nil, status, msg, errs)
	}
	huma.NewErrorWithContext = func(ctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		var c context.Context
		if ctx != nil {
			c = ctx.Context()
		}
		return fromHuma(c, status, msg, errs)
	}
}

// fromHuma converts an error Huma is about to send. ctx is nil when Huma only
// wants the type, to document it in OpenAPI.
func fromHuma(ctx context.Context, status int, msg string, errs []error) *ErrorResponse {
	for _, err := range errs {
		var e *ErrorResponse
		if errors.As(err, &e) {
			return e
		}
		var le *libra.Error
		if errors.As(err, &le) {
			return fromLibra(le)
		}
	}
	if status == http.StatusUnprocessableEntity {
		// The contract knows 400 for bad input, not 422.
		status = http.StatusBadRequest
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	code := codeForStatus(status)
	if status >= 500 {
		if ctx != nil {
			loggerFrom(ctx).Error("request failed", "status", status, "message", msg, "errors", joinErrs(errs))
		}
		return newError(status, code, internalMessage, nil)
	}
	var details []FieldError
	for _, err := range errs {
		if err == nil {
			continue
		}
		var d huma.ErrorDetailer
		if errors.As(err, &d) {
			ed := d.ErrorDetail()
			// ed.Value is deliberately dropped: for a body that does not parse
			// it is the whole body, which may be 50 MiB or hold secrets.
			details = append(details, FieldError{Field: fieldOf(ed), Message: ed.Message})
			continue
		}
		details = append(details, FieldError{Message: err.Error()})
	}
	switch status {
	case http.StatusRequestEntityTooLarge:
		return newError(status, code, bodyTooLargeMessage, map[string]any{"limitBytes": libra.MaxBodyBytes})
	case http.StatusRequestTimeout:
		return newError(status, code, "request body was not received in time", nil)
	}
	if len(details) == 0 {
		return newError(status, code, msg, nil)
	}
	return newError(status, code, summarize(details), details)
}

// fieldOf names the field a Huma error is about, relative to the body. Huma
// places a missing required property at its parent object; the client wants
// the property itself.
func fieldOf(ed *huma.ErrorDetail) string {
	loc := ed.Location
	if name, ok := strings.CutPrefix(ed.Message, "expected required property "); ok {
		if name, ok = strings.CutSuffix(name, " to be present"); ok {
			loc += "." + name
		}
	}
	return strings.TrimPrefix(loc, "body.")
}

// summarize makes a message that stands alone when a client logs only the
// message and not the details.
func summarize(details []FieldError) string {
	if len(details) == 1 {
		d := details[0]
		if d.Field == "" {
			return d.Message
		}
		return d.Field + ": " + d.Message
	}
	return fmt.Sprintf("%d problems with the request; see details", len(details))
}

func joinErrs(errs []error) string {
	var b strings.Builder
	for i, err := range errs {
		if err == nil {
			continue
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func fromLibra(e *libra.Error) *ErrorResponse {
	status := StatusForCode(e.Code)
	if status >= 500 {
		return newError(status, e.Code, internalMessage, nil)
	}
	return newError(status, e.Code, e.Message, e.Details)
}

// clientError turns any error from a store or the artifact store into what
// the client may see: an *libra.Error keeps its code and message, anything
// else is logged and becomes a generic INTERNAL_ERROR.
func clientError(ctx context.Context, op string, err error) *ErrorResponse {
	var e *ErrorResponse
	if errors.As(err, &e) {
		return e
	}
	var le *libra.Error
	if errors.As(err, &le) {
		r := fromLibra(le)
		if r.status >= 500 {
			loggerFrom(ctx).Error(op, "error", err)
		}
		return r
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// The client went away; nobody reads this response, so there is
		// nothing worth an error-level log line either.
		loggerFrom(ctx).Info(op+": client gone", "error", err)
	} else {
		loggerFrom(ctx).Error(op, "error", err)
	}
	return newError(http.StatusInternalServerError, libra.CodeInternal, internalMessage, nil)
}

// writeError sends e on a plain net/http response.
func writeError(w http.ResponseWriter, e *ErrorResponse) {
	h := w.Header()
	for k, vs := range e.headers {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(e.status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(e)
}

// writeHumaError sends e from a Huma middleware, before any handler ran.
func writeHumaError(ctx huma.Context, e *ErrorResponse) {
	for k, vs := range e.headers {
		for _, v := range vs {
			ctx.AppendHeader(k, v)
		}
	}
	ctx.SetHeader("Content-Type", "application/json")
	ctx.SetHeader("Cache-Control", "no-store")
	ctx.SetStatus(e.status)
	enc := json.NewEncoder(ctx.BodyWriter())
	enc.SetEscapeHTML(false)
	_ = enc.Encode(e)
}

type ctxKey int

const (
	keyLogger ctxKey = iota
	keyRequestID
	keyToken
)

func loggerFrom(ctx context.Context) *slog.Logger {
	if ctx != nil {
		if l, ok := ctx.Value(keyLogger).(*slog.Logger); ok {
			return l
		}
	}
	return slog.Default()
}

// RequestID returns the id of the request ctx belongs to, "" outside one.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}
