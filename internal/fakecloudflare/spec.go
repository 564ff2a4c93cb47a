package fakecloudflare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// specFile is the published spec subset, below a shared/ folder that sits
// beside the repository (or beside a folder holding the repository).
const specFile = "shared/specs/cloudflare/workers-pages-subset.openapi.json"

// FindSpec looks for the spec in every parent of the working directory;
// "" when it is nowhere.
func FindSpec() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, specFile)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// SpecChecker validates every request to a handler, and every response it
// gives, against Cloudflare's published OpenAPI spec.
type SpecChecker struct {
	router routers.Router

	mu          sync.Mutex
	violations  []string
	unspecified map[string]int
	checked     int
}

// LoadSpec loads the spec leniently: Cloudflare's full schema does not pass
// strict validation, so it is parsed and routed, not validated as a
// document, and two of its slips are mended (see mend). A missing file is
// reported with os.ErrNotExist so that callers can skip, saying so.
func LoadSpec(file string) (*SpecChecker, error) {
	if file == "" {
		return nil, fmt.Errorf("cloudflare spec: %s is in no parent folder: %w", specFile, os.ErrNotExist)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(file)
	if err != nil {
		return nil, fmt.Errorf("load cloudflare spec: %w", err)
	}
	mend(doc)
	// Requests are matched by path alone, whatever host served them.
	doc.Servers = openapi3.Servers{{URL: "http://cloudflare.invalid"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route cloudflare spec: %w", err)
	}
	return &SpecChecker{router: router, unspecified: map[string]int{}}, nil
}

// mend fixes what the spec gets wrong in OpenAPI 3.0 terms: the assets
// upload requires a security scheme "assets_jwt" it never declares (the
// session JWT, sent as a Bearer token), and failure envelopes give
// "result" the enum [null] without marking it nullable.
func mend(doc *openapi3.T) {
	if doc.Components.SecuritySchemes == nil {
		doc.Components.SecuritySchemes = openapi3.SecuritySchemes{}
	}
	if _, ok := doc.Components.SecuritySchemes["assets_jwt"]; !ok {
		doc.Components.SecuritySchemes["assets_jwt"] = &openapi3.SecuritySchemeRef{Value: openapi3.NewJWTSecurityScheme()}
	}
	seen := map[*openapi3.Schema]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				for _, mt := range resp.Value.Content {
					nullEnums(mt.Schema, seen)
				}
			}
		}
	}
}

func nullEnums(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	for _, v := range s.Enum {
		if v == nil {
			s.Nullable = true
		}
	}
	for _, p := range s.Properties {
		nullEnums(p, seen)
	}
	nullEnums(s.Items, seen)
	for _, group := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, sub := range group {
			nullEnums(sub, seen)
		}
	}
}

// bearerPresent is the spec-level check of security: the header the
// scheme names is there (the fake itself decides whether it is right).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme.Type == "http" && in.SecurityScheme.Scheme == "bearer" {
		if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
			return errors.New("no Bearer token")
		}
		return nil
	}
	if in.SecurityScheme.Type == "apiKey" && in.RequestValidationInput.Request.Header.Get(in.SecurityScheme.Name) == "" {
		return fmt.Errorf("no %s header", in.SecurityScheme.Name)
	}
	return nil
}

// Wrap returns h with every exchange checked.
func (c *SpecChecker) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		input := c.checkRequest(r, body)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if input != nil {
			c.checkResponse(r, input, rec)
		}
	})
}

func (c *SpecChecker) checkRequest(r *http.Request, body []byte) *openapi3filter.RequestValidationInput {
	probe := r.Clone(context.Background())
	probe.URL.Scheme, probe.URL.Host, probe.Host = "http", "cloudflare.invalid", "cloudflare.invalid"
	probe.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := c.router.FindRoute(probe)
	if err != nil {
		c.mu.Lock()
		c.unspecified[r.Method+" "+r.URL.Path]++
		c.mu.Unlock()
		return nil
	}
	multipartBody := strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data")
	input := &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true, ExcludeRequestBody: multipartBody}}
	err = openapi3filter.ValidateRequest(context.Background(), input)
	if err == nil && multipartBody {
		err = checkMultipart(route, r.Header.Get("Content-Type"), body)
	}
	c.record(r, "request", err)
	return input
}

// checkMultipart validates a multipart body by hand: kin-openapi cannot
// decode a body whose parts are named by data (the assets upload names
// each part by its hash). Each part becomes a property: JSON parts
// decoded, others as strings, then the object is checked against the
// operation's schema.
func checkMultipart(route *routers.Route, contentType string, body []byte) error {
	rb := route.Operation.RequestBody
	if rb == nil || rb.Value == nil || rb.Value.Content.Get("multipart/form-data") == nil {
		return errors.New("the spec takes no multipart/form-data body here")
	}
	schema := rb.Value.Content.Get("multipart/form-data").Schema
	if schema == nil || schema.Value == nil {
		return nil
	}
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type: %w", err)
	}
	obj := map[string]any{}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("multipart body: %w", err)
		}
		b, _ := io.ReadAll(part)
		var v any = string(b)
		if isObject(schema, part.FormName()) {
			if err := json.Unmarshal(b, &v); err != nil {
				return fmt.Errorf("part %s: %w", part.FormName(), err)
			}
		}
		obj[part.FormName()] = v
	}
	return schema.Value.VisitJSON(obj, openapi3.MultiErrors())
}

// isObject: the spec types the named part as a JSON object (the Worker's
// metadata); every other part is content, checked as a string.
func isObject(schema *openapi3.SchemaRef, name string) bool {
	if schema == nil || schema.Value == nil {
		return false
	}
	prop := schema.Value.Properties[name]
	return prop != nil && prop.Value != nil && prop.Value.Type.Is("object")
}

func (c *SpecChecker) checkResponse(r *http.Request, in *openapi3filter.RequestValidationInput, rec *httptest.ResponseRecorder) {
	if rec.Code >= 500 {
		// Outages are injected by tests; the spec describes none.
		c.mu.Lock()
		c.unspecified[fmt.Sprintf("%s %s (injected %d)", r.Method, r.URL.Path, rec.Code)]++
		c.mu.Unlock()
		return
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Options: &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true}}
	out.SetBodyBytes(rec.Body.Bytes())
	c.record(r, fmt.Sprintf("response %d", rec.Code), openapi3filter.ValidateResponse(context.Background(), out))
}

func (c *SpecChecker) record(r *http.Request, what string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked++
	if err != nil {
		c.violations = append(c.violations, fmt.Sprintf("%s %s: %s: %v", r.Method, r.URL.Path, what, err))
	}
}

// Report returns how many exchanges were checked, what broke the spec, and
// the requests the spec subset does not describe (paths it lacks, and
// injected outages).
func (c *SpecChecker) Report() (checked int, violations []string, unspecified map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := make(map[string]int, len(c.unspecified))
	for k, v := range c.unspecified {
		u[k] = v
	}
	return c.checked, append([]string(nil), c.violations...), u
}
