package fakedaytona

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
)

// createSandbox is the CreateSandbox schema's part the fake uses.
type createSandbox struct {
	Snapshot string            `json:"snapshot"`
	Env      map[string]string `json:"env"`
	Labels   map[string]string `json:"labels"`
	CPU      *int              `json:"cpu"`
	Memory   *int              `json:"memory"`
	Disk     *int              `json:"disk"`
}

func (f *Fake) serveAPI(w http.ResponseWriter, r *http.Request, p string) {
	switch {
	case p == "/sandbox" && r.Method == http.MethodPost:
		f.create(w, r)
	case strings.HasPrefix(p, "/sandbox/") && !strings.Contains(strings.TrimPrefix(p, "/sandbox/"), "/"):
		f.sandboxByID(w, r, strings.TrimPrefix(p, "/sandbox/"))
	default:
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "no route"))
	}
}

func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	var req createSandbox
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "invalid body: "+err.Error()))
		return
	}
	for _, v := range []*int{req.CPU, req.Memory, req.Disk} {
		if v != nil && *v < 1 {
			writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "resources must be at least 1"))
			return
		}
	}
	home, err := os.MkdirTemp("", "fakedaytona-")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody(http.StatusInternalServerError, err.Error()))
		return
	}
	s := &sandbox{id: newID(), state: "creating", home: home, env: req.Env, labels: req.Labels,
		snapshot: req.Snapshot, startIn: f.StartAfterPolls, sessions: map[string]*session{}}
	f.mu.Lock()
	f.sandboxes[s.id] = s
	f.created++
	if s.startIn <= 0 {
		s.state = "started"
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, f.info(s))
}

func (f *Fake) sandboxByID(w http.ResponseWriter, r *http.Request, id string) {
	s := f.lookup(id)
	if s == nil {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "Sandbox with ID or name "+id+" not found"))
		return
	}
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		if s.state == "creating" {
			if s.startIn--; s.startIn <= 0 {
				s.state = "started"
			}
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, f.info(s))
	case http.MethodDelete:
		f.mu.Lock()
		s.destroy()
		f.deleted++
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, f.info(s))
	default:
		writeJSON(w, http.StatusMethodNotAllowed, errorBody(http.StatusMethodNotAllowed, "method not allowed"))
	}
}

// info is the Sandbox schema with its required fields.
func (f *Fake) info(s *sandbox) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	env := s.env
	if env == nil {
		env = map[string]string{}
	}
	labels := s.labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{
		"id": s.id, "organizationId": "fake-org", "name": s.id, "snapshot": s.snapshot,
		"user": "daytona", "env": env, "labels": labels, "public": false, "networkBlockAll": false,
		"target": "us", "cpu": 1, "gpu": 0, "memory": 1, "disk": 3, "state": s.state,
		"toolboxProxyUrl": f.URL + "/toolbox",
	}
}
