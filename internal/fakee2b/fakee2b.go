// Package fakee2b is a FAKE of E2B's control-plane API and of envd, the
// daemon inside each sandbox, for tests only: an http.Handler that enforces
// what the published specs enforce (X-API-Key, X-Access-Token, status codes,
// required fields, the sandbox's timeout, which kills it when it is not
// extended) and runs processes for real with os/exec in a temporary
// directory that stands for the sandbox user's home, streaming their output
// as Connect envelopes.
//
// Routes: the API at the root (E2B_API_URL = server URL); envd under /envd
// (E2B_SANDBOX_URL = server URL + "/envd"), routed by the E2b-Sandbox-Id
// header as E2B's clients send it with a sandbox URL.
package fakee2b

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fake is one fake E2B with its sandboxes.
type Fake struct {
	// Key is the API key it accepts in X-API-Key.
	Key string
	// Fault, when set, may answer a request with a status of its own
	// choosing before the fake handles it (an outage, a rate limit).
	Fault func(r *http.Request) int
	// Delay is slept before each answer (a slow provider).
	Delay time.Duration

	mu        sync.Mutex
	sandboxes map[string]*sandbox
	created   int
	killed    int
	expired   int
	extended  int
}

// New returns a fake accepting key.
func New(key string) *Fake {
	return &Fake{Key: key, sandboxes: map[string]*sandbox{}}
}

// Stats are counts of what happened to sandboxes.
type Stats struct{ Created, Killed, Expired, Extended, Live int }

// Stats reports the counts so far.
func (f *Fake) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := 0
	for _, s := range f.sandboxes {
		if !s.gone {
			live++
		}
	}
	return Stats{f.created, f.killed, f.expired, f.extended, live}
}

// Close kills every sandbox.
func (f *Fake) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sandboxes {
		s.destroy()
	}
}

func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.Delay > 0 {
		time.Sleep(f.Delay)
	}
	if f.Fault != nil {
		if code := f.Fault(r); code != 0 {
			writeJSON(w, code, apiError(code, "injected fault"))
			return
		}
	}
	if p, ok := strings.CutPrefix(r.URL.Path, "/envd"); ok {
		f.serveEnvd(w, r, p)
		return
	}
	if f.Key == "" || r.Header.Get("X-API-Key") != f.Key {
		writeJSON(w, http.StatusUnauthorized, apiError(http.StatusUnauthorized, "Invalid API key"))
		return
	}
	f.serveAPI(w, r)
}

// apiError is the spec's Error schema.
func apiError(code int, msg string) map[string]any {
	return map[string]any{"code": code, "message": msg}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func newID() string { return strings.ToLower(rand.Text()[:20]) }

func (f *Fake) lookup(id string) *sandbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sandboxes[id]
	if s == nil || s.gone {
		return nil
	}
	return s
}
