// Package openapicheck wraps a test fake's http.Handler so that every request
// it receives and every response it gives is validated against a provider's
// published OpenAPI document. Only tests use it: it is how the fakes, and our
// clients that talk to them, are held to the provider's contract.
package openapicheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

func init() {
	// Files travel as raw bytes; the specs declare them as binary strings.
	openapi3filter.RegisterBodyDecoder("application/octet-stream", openapi3filter.FileBodyDecoder)
}

// Mount says which spec covers the requests whose path starts with Prefix;
// StripSegments more path segments after it (e.g. a sandbox id in a proxy
// path) are removed before the path is matched against the spec.
type Mount struct {
	Prefix        string
	StripSegments int
	SpecFile      string
	// Unlisted lets through paths the spec does not have (e.g. Connect RPC
	// routes, which a .proto describes); they are not validated.
	Unlisted []string
	// OpaqueResponses are paths whose answer bodies are not validated: a
	// multipart answer whose schema is an untyped object (gin.H), which
	// kin-openapi cannot decode part by part. Status and headers still are.
	OpaqueResponses []string
}

type mount struct {
	Mount
	router routers.Router
}

// Checker validates traffic and keeps what failed.
type Checker struct {
	next   http.Handler
	mounts []mount

	mu       sync.Mutex
	failures []string
	checked  int
}

// Load reads each mount's spec. The specs are the vendors': examples and
// formats that do not validate themselves are not our concern.
func Load(next http.Handler, mounts ...Mount) (*Checker, error) {
	c := &Checker{next: next}
	for _, m := range mounts {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(m.SpecFile)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", m.SpecFile, err)
		}
		doc.Servers = nil // matched on the path alone, after the prefix
		r, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation(), openapi3.DisableSchemaFormatValidation(), openapi3.DisableSchemaDefaultsValidation(), openapi3.DisableSchemaPatternValidation())
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", m.SpecFile, err)
		}
		c.mounts = append(c.mounts, mount{Mount: m, router: r})
	}
	return c, nil
}

// Failures are the validation errors seen so far.
func (c *Checker) Failures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.failures...)
}

// Checked is how many exchanges were validated.
func (c *Checker) Checked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checked
}

func (c *Checker) fail(format string, args ...any) {
	c.mu.Lock()
	c.failures = append(c.failures, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

// ServeHTTP validates the request, lets the fake answer, validates the
// answer and passes it on. A streamed answer is held until it is complete.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, specPath, ok := c.find(r.URL.Path)
	if !ok {
		c.fail("%s %s: no spec covers this path", r.Method, r.URL.Path)
		c.next.ServeHTTP(w, r)
		return
	}
	in, err := c.route(m, r, specPath)
	if in == nil {
		if err != nil {
			c.fail("%s %s: %v", r.Method, r.URL.Path, err)
		}
		c.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	in.Request = cloneWithPath(r, specPath, body)
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		c.fail("request %s %s: %v", r.Method, r.URL.Path, err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	c.checkResponse(in, rec, slices.Contains(m.OpaqueResponses, specPath))
	copyResponse(w, rec)
}

func (c *Checker) checkResponse(in *openapi3filter.RequestValidationInput, rec *httptest.ResponseRecorder, opaque bool) {
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Options: &openapi3filter.Options{ExcludeResponseBody: opaque},
	}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.fail("response %d to %s %s: %v", rec.Code, in.Request.Method, in.Request.URL.Path, err)
	}
	c.mu.Lock()
	c.checked++
	c.mu.Unlock()
}

// route finds the operation; a nil input with a nil error is an allowed
// unlisted path.
func (c *Checker) route(m *mount, r *http.Request, specPath string) (*openapi3filter.RequestValidationInput, error) {
	probe := cloneWithPath(r, specPath, nil)
	route, params, err := m.router.FindRoute(probe)
	if err != nil {
		for _, u := range m.Unlisted {
			if strings.HasPrefix(specPath, u) {
				return nil, nil
			}
		}
		return nil, fmt.Errorf("not in %s: %w", m.SpecFile, err)
	}
	return &openapi3filter.RequestValidationInput{
		Route: route, PathParams: params,
		Options: &openapi3filter.Options{AuthenticationFunc: headerAuth},
	}, nil
}

func (c *Checker) find(p string) (*mount, string, bool) {
	for i := range c.mounts {
		m := &c.mounts[i]
		rest, ok := strings.CutPrefix(p, m.Prefix)
		if !ok {
			continue
		}
		for range m.StripSegments {
			rest = strings.TrimPrefix(rest, "/")
			_, after, _ := strings.Cut(rest, "/")
			rest = "/" + after
		}
		if rest == "" {
			rest = "/"
		}
		return m, rest, true
	}
	return nil, "", false
}

func cloneWithPath(r *http.Request, p string, body []byte) *http.Request {
	c := r.Clone(context.Background())
	u := *r.URL
	u.Path, u.RawPath = p, ""
	c.URL = &u
	c.Body = io.NopCloser(bytes.NewReader(body))
	return c
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// headerAuth checks that a security scheme's credential is present; the
// fake itself checks its value.
func headerAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	h := in.RequestValidationInput.Request.Header
	switch {
	case s.Type == "apiKey" && s.In == "header":
		if h.Get(s.Name) == "" {
			return fmt.Errorf("missing header %s", s.Name)
		}
		return nil
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		if !strings.HasPrefix(h.Get("Authorization"), "Bearer ") {
			return errors.New("missing bearer token")
		}
		return nil
	default:
		return fmt.Errorf("scheme %s not used by our clients", s.Type)
	}
}
