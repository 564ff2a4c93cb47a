// Package fakedaytona is a FAKE of Daytona's API and toolbox, for tests only:
// an http.Handler that enforces what the published specs enforce (bearer
// auth, status codes, the sandbox state machine, required fields, the
// bulk-upload part order) and runs session commands for real with os/exec
// in a temporary directory that stands for the sandbox user's home.
//
// Routes: the API under /api (DAYTONA_API_URL = server URL + "/api"); the
// toolbox under /toolbox/{sandboxId} (toolboxProxyUrl = server URL +
// "/toolbox"). Paths in the toolbox must be relative to the home directory.
package fakedaytona

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Fake is one fake Daytona with its sandboxes.
type Fake struct {
	// Key is the API key it accepts as "Authorization: Bearer <key>".
	Key string
	// URL is the server's base URL, set by the test after it starts the
	// server; toolboxProxyUrl is derived from it.
	URL string
	// StartAfterPolls is how many GETs a new sandbox stays "creating".
	StartAfterPolls int
	// Fault, when set, may answer a request with a status of its own
	// choosing before the fake handles it (an outage, a rate limit).
	Fault func(r *http.Request) int
	// Delay is slept before each answer (a slow provider).
	Delay time.Duration

	mu        sync.Mutex
	sandboxes map[string]*sandbox
	created   int
	deleted   int
}

// New returns a fake accepting key.
func New(key string) *Fake {
	return &Fake{Key: key, StartAfterPolls: 1, sandboxes: map[string]*sandbox{}}
}

// Counts are how many sandboxes were created and deleted.
func (f *Fake) Counts() (created, deleted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.created, f.deleted
}

// Live is how many sandboxes exist and are not deleted.
func (f *Fake) Live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.sandboxes {
		if s.state != "destroyed" {
			n++
		}
	}
	return n
}

// Close removes every sandbox's directory and stops its commands.
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
			writeJSON(w, code, errorBody(code, "injected fault"))
			return
		}
	}
	if r.Header.Get("Authorization") != "Bearer "+f.Key || f.Key == "" {
		writeJSON(w, http.StatusUnauthorized, errorBody(http.StatusUnauthorized, "Invalid credentials"))
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/"):
		f.serveAPI(w, r, strings.TrimPrefix(r.URL.Path, "/api"))
	case strings.HasPrefix(r.URL.Path, "/toolbox/"):
		f.serveToolbox(w, r, strings.TrimPrefix(r.URL.Path, "/toolbox/"))
	default:
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "no route"))
	}
}

func newID() string { return strings.ToLower(rand.Text()[:20]) }

func errorBody(code int, msg string) map[string]any {
	return map[string]any{"statusCode": code, "message": msg, "error": http.StatusText(code)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// lookup finds a sandbox that is not deleted.
func (f *Fake) lookup(id string) *sandbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sandboxes[id]
	if s == nil || s.state == "destroyed" {
		return nil
	}
	return s
}

// TempDirs lists the sandbox homes that still exist on disk (for checks
// that deletion removed them).
func (f *Fake) TempDirs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.sandboxes {
		if _, err := os.Stat(s.home); err == nil {
			out = append(out, s.home)
		}
	}
	return out
}
