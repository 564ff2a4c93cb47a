package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
)

// A POST /deploy body is decoded here rather than by Huma. Huma validates a
// body by first decoding all of it into generic values (map[string]any,
// []any), and only then against the schema: a 40 MB body of tiny nested
// arrays in a field nobody reads became over a gigabyte of interfaces. Here
// every pass decodes into fixed Go types, so a field that is not wanted is
// scanned and skipped, never built, and every list is counted before
// anything is allocated per element. The schema in /openapi.json is still
// generated from DeployRequest (see documentDeployBody).

// maxHistoryMessages bounds the chat messages of one deployment. Decoded
// messages cost memory even without a diff; no real chat comes near this.
const maxHistoryMessages = 100_000

// deployFields are the top-level names a body may use, read from
// DeployRequest's tags; those without omitempty are required, as Huma's
// schema says. Any other name is refused, so that a misspelt "initfiles"
// fails loudly instead of deploying nothing.
var deployFields, requiredDeployFields = jsonFields(reflect.TypeFor[DeployRequest]())

func jsonFields(t reflect.Type) (known map[string]bool, required []string) {
	known = map[string]bool{}
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		known[name] = true
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	return known, required
}

// unknownField is the error for a top-level name not in deployFields.
type unknownField struct{ name string }

func (e unknownField) Error() string { return fmt.Sprintf("unknown field %q", e.name) }

// deployKey is a top-level name. It refuses unknown names as they are read,
// so the map it keys never holds more than the known ones.
type deployKey string

func (k *deployKey) UnmarshalText(b []byte) error {
	if !deployFields[string(b)] {
		return unknownField{name: truncate(string(b), 100)}
	}
	*k = deployKey(b)
	return nil
}

// skipped is a JSON value that is checked for syntax and then dropped.
// Being empty, a []skipped of any length allocates nothing.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// present records whether a field was sent with a value other than null.
type present bool

func (p *present) UnmarshalJSON(b []byte) error {
	*p = present(string(b) != "null")
	return nil
}

// encoding records whether a content encoding is one the API knows, so the
// problem is reported at the encoding field rather than at the content.
type encoding struct{ unknown bool }

func (e *encoding) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"utf8"`, `"base64"`, "null":
	default:
		e.unknown = true
	}
	return nil
}

// deployCounts sizes the lists before anything is allocated per element.
type deployCounts struct {
	InitFiles       []skipped `json:"initFiles"`
	Files           []skipped `json:"files"`
	HistoryMessages []skipped `json:"historyMessages"`
}

// deployShape records which required fields each element has: a few bytes
// per element, decoded once the element counts are known to be bounded.
type deployShape struct {
	InitFiles []struct {
		Path     present  `json:"path"`
		Content  present  `json:"content"`
		Encoding encoding `json:"encoding"`
	} `json:"initFiles"`
	Files []struct {
		Path   present `json:"path"`
		SHA256 present `json:"sha256"`
		Size   present `json:"size"`
	} `json:"files"`
	HistoryMessages []struct {
		Role    present `json:"role"`
		Content present `json:"content"`
		Diff    []struct {
			Path     present  `json:"path"`
			Type     present  `json:"type"`
			Encoding encoding `json:"encoding"`
		} `json:"diff"`
	} `json:"historyMessages"`
}

// decodeDeploy decodes and structurally checks a POST /deploy body: JSON
// syntax, known top-level fields, required fields, list sizes and types.
// The values themselves are checked by checkDeploy.
func decodeDeploy(body []byte) (*DeployRequest, *ErrorResponse) {
	var keys map[deployKey]skipped
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, decodeError(err)
	}
	var p problems
	for _, name := range requiredDeployFields {
		if _, ok := keys[deployKey(name)]; !ok {
			p.invalid(name, "is required")
		}
	}
	if e := p.err(); e != nil {
		return nil, e
	}
	if e := checkCounts(body); e != nil {
		return nil, e
	}
	if e := checkShape(body); e != nil {
		return nil, e
	}
	var req DeployRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, decodeError(err)
	}
	return &req, nil
}

// checkCounts refuses more files or messages than a deployment may have.
func checkCounts(body []byte) *ErrorResponse {
	var n deployCounts
	if err := json.Unmarshal(body, &n); err != nil {
		return decodeError(err)
	}
	var p problems
	if len(n.InitFiles) > libra.MaxFiles {
		p.large("initFiles", "%d files in initFiles; the limit is %d", len(n.InitFiles), libra.MaxFiles)
	}
	if len(n.Files) > libra.MaxFiles {
		p.large("files", "%d files; the limit is %d", len(n.Files), libra.MaxFiles)
	}
	if len(n.HistoryMessages) > maxHistoryMessages {
		p.large("historyMessages", "%d messages; the limit is %d", len(n.HistoryMessages), maxHistoryMessages)
	}
	return p.err()
}

// checkShape reports missing required fields of list elements, and refuses
// more diffs than files allowed before they are decoded.
func checkShape(body []byte) *ErrorResponse {
	var shape deployShape
	if err := json.Unmarshal(body, &shape); err != nil {
		return decodeError(err)
	}
	var p problems
	count := len(shape.InitFiles)
	for i, f := range shape.InitFiles {
		field := fmt.Sprintf("initFiles[%d]", i)
		p.require(field, sent{"path", f.Path}, sent{"content", f.Content})
		p.knownEncoding(field, f.Encoding)
	}
	count += len(shape.Files)
	for i, f := range shape.Files {
		p.require(fmt.Sprintf("files[%d]", i), sent{"path", f.Path}, sent{"sha256", f.SHA256}, sent{"size", f.Size})
	}
	for i, m := range shape.HistoryMessages {
		field := fmt.Sprintf("historyMessages[%d]", i)
		p.require(field, sent{"role", m.Role}, sent{"content", m.Content})
		count += len(m.Diff)
		for j, d := range m.Diff {
			diff := fmt.Sprintf("%s.diff[%d]", field, j)
			p.require(diff, sent{"path", d.Path}, sent{"type", d.Type})
			p.knownEncoding(diff, d.Encoding)
		}
	}
	if count > libra.MaxFiles {
		p.large("initFiles", "%d files in initFiles and diffs together; the limit is %d", count, libra.MaxFiles)
	}
	return p.err()
}

// sent is a required field's name and whether the client sent it.
type sent struct {
	name string
	ok   present
}

// require reports each required field of object that was not sent.
func (p *problems) require(object string, fields ...sent) {
	for _, f := range fields {
		if !f.ok {
			p.invalid(object+"."+f.name, "is required")
		}
	}
}

func (p *problems) knownEncoding(object string, e encoding) {
	if e.unknown {
		p.invalid(object+".encoding", "must be utf8 or base64")
	}
}

// decodeError turns a decoding error into a 400 that names the field where
// it can, and never echoes the body.
func decodeError(err error) *ErrorResponse {
	var (
		syntax  *json.SyntaxError
		typ     *json.UnmarshalTypeError
		unknown unknownField
	)
	switch {
	case errors.As(err, &unknown):
		return fieldError(unknown.name, "is not a field of this request; names are case-sensitive")
	case errors.As(err, &syntax):
		return newError(http.StatusBadRequest, libra.CodeValidation,
			fmt.Sprintf("request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset), nil)
	case errors.As(err, &typ) && typ.Field == "":
		return newError(http.StatusBadRequest, libra.CodeValidation, "request body must be a JSON object", nil)
	case errors.As(err, &typ):
		return fieldError(typ.Field, fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type), typ.Value))
	}
	return newError(http.StatusBadRequest, libra.CodeValidation, "request body could not be decoded", nil)
}

func fieldError(field, msg string) *ErrorResponse {
	return newError(http.StatusBadRequest, libra.CodeValidation, field+": "+msg, []FieldError{{Field: field, Message: msg}})
}

// jsonKind names a Go type as the JSON a client should have sent.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	}
	return "a number"
}

// documentDeployBody describes POST /deploy's body as the DeployRequest it
// is decoded into; Huma, which does not read it, knows nothing of it.
func documentDeployBody(api huma.API) {
	schema := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[DeployRequest](), true, "DeployRequest")
	api.OpenAPI().Paths["/deploy"].Post.RequestBody = &huma.RequestBody{
		Required: true,
		Content:  map[string]*huma.MediaType{"application/json": {Schema: schema}},
	}
}

// Resolve reads the body before the handler runs (Huma calls it after the
// operation's middlewares, so only authenticated JSON requests get here).
func (in *deployInput) Resolve(ctx huma.Context) []error {
	// 50 MiB over a slow uplink takes minutes, not the server's default.
	if err := ctx.SetReadDeadline(time.Now().Add(deployBodyTimeout)); err != nil {
		return []error{fmt.Errorf("set body deadline: %w", err)}
	}
	declared, err := strconv.ParseInt(ctx.Header("Content-Length"), 10, 64)
	if err != nil {
		declared = -1 // chunked: the size is learnt while reading
	}
	body, e := readDeployBody(ctx.BodyReader(), declared)
	if e != nil {
		return []error{e}
	}
	in.body = body
	return nil
}

// commitAfter is how much of a body must arrive before a buffer of its
// whole declared size is set aside, so that a client declaring 50 MiB and
// sending nothing does not make the server hold 50 MiB for it.
const commitAfter = 4 << 20

// readDeployBody reads at most MaxBodyBytes. A body of declared size ends
// in one buffer of that size: the doubling buffer Huma reads into passes
// through 1.5 to 2.4 times the body, three times over for three requests.
func readDeployBody(r io.Reader, declared int64) ([]byte, *ErrorResponse) {
	if declared < 0 || declared > libra.MaxBodyBytes {
		declared = 0
	}
	// One byte more than the limit tells a body over it from one at it.
	r = io.LimitReader(r, libra.MaxBodyBytes+1)
	buf := make([]byte, 0, min(declared, commitAfter)+1)
	for {
		if len(buf) == cap(buf) {
			buf = growBody(buf, declared)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bodyReadError(err)
		}
	}
	switch {
	case len(buf) > libra.MaxBodyBytes:
		return nil, newError(http.StatusRequestEntityTooLarge, libra.CodePayloadTooLarge, bodyTooLargeMessage,
			map[string]any{"limitBytes": libra.MaxBodyBytes})
	case len(buf) == 0:
		return nil, newError(http.StatusBadRequest, libra.CodeValidation, "request body is required", nil)
	}
	return buf, nil
}

// growBody makes room for more of a body: all of its declared size (and
// the byte that tells whether it is longer), or what append would give
// when the size is unknown or already exceeded.
func growBody(buf []byte, declared int64) []byte {
	if int64(len(buf)) < declared {
		return append(make([]byte, 0, declared+1), buf...)
	}
	return append(buf, 0)[:len(buf)]
}

func bodyReadError(err error) *ErrorResponse {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return newError(http.StatusRequestTimeout, CodeRequestTimeout, "request body was not received in time", nil)
	}
	return newError(http.StatusBadRequest, libra.CodeValidation, "request body could not be read", nil)
}
