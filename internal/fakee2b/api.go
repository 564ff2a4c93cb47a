package fakee2b

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"time"
)

func (f *Fake) serveAPI(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/sandboxes" && r.Method == http.MethodPost:
		f.create(w, r)
	case strings.HasPrefix(p, "/sandboxes/"):
		id, rest, _ := strings.Cut(strings.TrimPrefix(p, "/sandboxes/"), "/")
		f.sandboxRoute(w, r, id, rest)
	default:
		writeJSON(w, http.StatusNotFound, apiError(http.StatusNotFound, "no route"))
	}
}

func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TemplateID string `json:"templateID"`
		Timeout    *int   `json:"timeout"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.TemplateID == "" {
		writeJSON(w, http.StatusBadRequest, apiError(http.StatusBadRequest, "templateID is required"))
		return
	}
	timeout := 15 // E2B's default when none is sent
	if req.Timeout != nil {
		timeout = *req.Timeout
	}
	home, err := os.MkdirTemp("", "fakee2b-")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError(http.StatusInternalServerError, err.Error()))
		return
	}
	s := &sandbox{id: newID(), token: newID(), template: req.TemplateID, home: home}
	f.mu.Lock()
	f.sandboxes[s.id] = s
	f.created++
	f.arm(s, timeout)
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, f.info(s))
}

// arm (re)starts the sandbox's time to live; f.mu is held.
func (f *Fake) arm(s *sandbox, seconds int) {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(time.Duration(seconds)*time.Second, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !s.gone {
			s.destroy()
			f.expired++
		}
	})
}

func (f *Fake) info(s *sandbox) map[string]any {
	return map[string]any{
		"templateID": s.template, "sandboxID": s.id, "clientID": "fake-client",
		"envdVersion": "0.2.0", "envdAccessToken": s.token, "domain": nil,
	}
}

func (f *Fake) sandboxRoute(w http.ResponseWriter, r *http.Request, id, rest string) {
	s := f.lookup(id)
	if s == nil {
		writeJSON(w, http.StatusNotFound, apiError(http.StatusNotFound, "sandbox \""+id+"\" not found"))
		return
	}
	switch {
	case rest == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, f.info(s))
	case rest == "" && r.Method == http.MethodDelete:
		f.mu.Lock()
		s.destroy()
		f.killed++
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case rest == "timeout" && r.Method == http.MethodPost:
		f.extend(w, r, s)
	default:
		writeJSON(w, http.StatusNotFound, apiError(http.StatusNotFound, "no route"))
	}
}

func (f *Fake) extend(w http.ResponseWriter, r *http.Request, s *sandbox) {
	var req struct {
		Timeout *int `json:"timeout"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Timeout == nil || *req.Timeout < 0 {
		writeJSON(w, http.StatusBadRequest, apiError(http.StatusBadRequest, "timeout is required"))
		return
	}
	f.mu.Lock()
	f.arm(s, *req.Timeout)
	f.extended++
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
