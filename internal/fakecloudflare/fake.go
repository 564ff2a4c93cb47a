// Package fakecloudflare is a FAKE of the part of Cloudflare's v4 API that
// publishes Workers with static assets, for tests only: nothing outside
// tests may use it. It is built to Cloudflare's published OpenAPI spec
// (the subset in shared/specs/cloudflare) and wrangler's documented
// behaviour: Bearer API tokens, the assets upload session whose JWT
// authorises the uploads (202 while buckets remain, 201 with a completion
// JWT after the last), and assets kept by hash so that a later session
// asks only for what it lacks.
package fakecloudflare

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fake is one Cloudflare account. Its zero value is not usable: see New.
type Fake struct {
	AccountID string
	Token     string
	// Subdomain is the account's workers.dev subdomain.
	Subdomain string
	// BucketSize is how many files the fake puts in one bucket.
	BucketSize int
	// JWTTTL is how long upload tokens live (Cloudflare: one hour).
	JWTTTL time.Duration
	// ZoneID and ZoneName are the account's one zone, where Workers
	// custom domains may be attached.
	ZoneID, ZoneName string

	mux      *http.ServeMux
	mu       sync.Mutex
	key      []byte
	assets   map[string]storedAsset
	sessions map[string]*session
	scripts  map[string]*Script
	uploads  []string // every hash ever uploaded, in order
	faults   []fault
	calls    map[string]int
	expire   int
	unrouted []string
	domains  map[string]string // hostname → Worker
	// hostnames are the zone's Cloudflare for SaaS custom hostnames.
	hostnames map[string]*CustomHostname
	delays    map[string]time.Duration
}

type storedAsset struct {
	Content     []byte
	ContentType string
}

// Script is a Worker as the fake stored it.
type Script struct {
	Name      string
	Namespace string
	Metadata  map[string]any
	Modules   map[string][]byte
	// Assets is the manifest ("/path" → hash) its completion token redeemed.
	Assets     map[string]string
	Subdomain  bool
	Uploads    int
	ModifiedAt time.Time
}

type fault struct {
	match  string
	status int
	skip   int
	left   int
}

// New returns a fake account.
func New(accountID, token string) *Fake {
	f := &Fake{
		AccountID: accountID, Token: token, Subdomain: "libra-test", BucketSize: 3, JWTTTL: time.Hour,
		key: []byte("fake-cloudflare-signing-key"), assets: map[string]storedAsset{}, sessions: map[string]*session{},
		scripts: map[string]*Script{}, calls: map[string]int{}, domains: map[string]string{}, hostnames: map[string]*CustomHostname{},
		ZoneID: "fedcba9876543210fedcba9876543210", ZoneName: "example.com",
	}
	f.routes()
	return f
}

// Fail makes the next n requests whose path contains match answer status
// (a Cloudflare outage, a rate limit).
func (f *Fake) Fail(match string, status, n int) { f.FailAfter(match, status, 0, n) }

// FailAfter is Fail once skip matching requests have been served: an
// outage that starts in the middle of an upload.
func (f *Fake) FailAfter(match string, status, skip, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fault{match: match, status: status, skip: skip, left: n})
}

// Delay holds every request whose path contains match for d (or until its
// client gives up) before answering: a Cloudflare that is slow to answer.
func (f *Fake) Delay(match string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.delays == nil {
		f.delays = map[string]time.Duration{}
	}
	f.delays[match] = d
}

func (f *Fake) delay(r *http.Request) {
	f.mu.Lock()
	var d time.Duration
	for match, md := range f.delays {
		if strings.Contains(r.URL.Path, match) {
			d = md
		}
	}
	f.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
}

// ExpireUploadTokens makes the next n asset uploads find their session
// token expired, as an hour-long upload would.
func (f *Fake) ExpireUploadTokens(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire = n
}

// Uploaded returns every asset hash uploaded so far, in order.
func (f *Fake) Uploaded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.uploads...)
}

// Asset returns a stored asset's content by hash.
func (f *Fake) Asset(hash string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.assets[hash]
	return a.Content, ok
}

// Script returns a copy of the stored Worker, nil when there is none.
func (f *Fake) Script(name string) *Script {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.scripts[name]
	if !ok {
		return nil
	}
	c := *s
	return &c
}

// Domains returns the Workers custom domains: hostname → Worker.
func (f *Fake) Domains() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.domains))
	for k, v := range f.domains {
		out[k] = v
	}
	return out
}

// Unrouted lists the requests the fake has no endpoint for.
func (f *Fake) Unrouted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.unrouted...)
}

// Calls counts the requests served per "METHOD route".
func (f *Fake) Calls(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[route]
}

// ServeHTTP implements http.Handler; the API lives at the root (point
// CLOUDFLARE_API_BASE_URL at the fake's URL).
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.delay(r)
	if status, ok := f.injectedFault(r.URL.Path); ok {
		writeError(w, status, 10013, "injected fault: "+http.StatusText(status))
		return
	}
	if _, pattern := f.mux.Handler(r); pattern == "" {
		f.mu.Lock()
		f.unrouted = append(f.unrouted, r.Method+" "+r.URL.String())
		f.mu.Unlock()
		writeError(w, http.StatusNotFound, 7003, "Could not route to "+r.URL.Path+", perhaps your object identifier is invalid?")
		return
	}
	f.mux.ServeHTTP(w, r)
}

// routes are the endpoints the fake implements, named as in Calls.
func (f *Fake) routes() {
	f.mux = http.NewServeMux()
	scripts := "/accounts/{account}/workers/scripts/{script}"
	dispatch := "/accounts/{account}/workers/dispatch/namespaces/{namespace}/scripts/{script}"
	for pattern, h := range map[string]http.HandlerFunc{
		"POST " + scripts + "/assets-upload-session":     f.createSession,
		"POST " + dispatch + "/assets-upload-session":    f.createSession,
		"POST /accounts/{account}/workers/assets/upload": f.uploadAssets,
		"PUT " + scripts:                                    f.putScript,
		"PUT " + dispatch:                                   f.putScript,
		"POST " + scripts + "/subdomain":                    f.postScriptSubdomain,
		"GET " + scripts + "/subdomain":                     f.getScriptSubdomain,
		"GET /accounts/{account}/workers/subdomain":         f.accountSubdomain,
		"GET /accounts/{account}/workers/services/{script}": f.getService,
		"PUT /accounts/{account}/workers/domains":           f.putDomain,
		"GET " + scripts + "/deployments":                   f.getDeployments,
		"GET /accounts/{account}/workers/domains":           f.listDomains,
		"POST /zones/{zone}/custom_hostnames":               f.postCustomHostname,
		"GET /zones/{zone}/custom_hostnames":                f.listCustomHostnames,
	} {
		f.mux.HandleFunc(pattern, f.counted(h))
	}
}

func (f *Fake) counted(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls[r.Pattern]++
		f.mu.Unlock()
		h(w, r)
	}
}

func (f *Fake) injectedFault(p string) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.faults {
		fl := &f.faults[i]
		if fl.left == 0 || !strings.Contains(p, fl.match) {
			continue
		}
		if fl.skip > 0 {
			fl.skip--
			continue
		}
		fl.left--
		return fl.status, true
	}
	return 0, false
}

// authorized checks the account token, as Cloudflare does before routing:
// a missing or malformed header is 400 (6003), a wrong token 403 (10000).
func (f *Fake) authorized(w http.ResponseWriter, r *http.Request, account string) bool {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	switch {
	case !ok || token == "":
		writeError(w, http.StatusBadRequest, 6003, "Invalid request headers")
		return false
	case token != f.Token:
		writeError(w, http.StatusForbidden, 10000, "Authentication error")
		return false
	case account != f.AccountID:
		writeError(w, http.StatusForbidden, 10000, "Authentication error")
		return false
	}
	return true
}

// envelope writes Cloudflare's success envelope.
func writeResult(w http.ResponseWriter, status int, result any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success": true, "errors": []any{}, "messages": []any{}, "result": result,
	})
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success": false, "errors": []any{map[string]any{"code": code, "message": msg}}, "messages": []any{}, "result": nil,
	})
}
