package fakedaytona

import (
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

func (f *Fake) serveToolbox(w http.ResponseWriter, r *http.Request, rest string) {
	id, p, _ := strings.Cut(rest, "/")
	p = "/" + p
	s := f.lookup(id)
	if s == nil {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "sandbox not found"))
		return
	}
	f.mu.Lock()
	state := s.state
	f.mu.Unlock()
	if state != "started" {
		writeJSON(w, http.StatusConflict, errorBody(http.StatusConflict, "sandbox is not started"))
		return
	}
	switch {
	case p == "/files/bulk-upload" && r.Method == http.MethodPost:
		f.bulkUpload(w, r, s)
	case p == "/files/download" && r.Method == http.MethodGet:
		f.download(w, r, s)
	case p == "/files/bulk-download" && r.Method == http.MethodPost:
		bulkDownload(w, r, s)
	case p == "/process/session" && r.Method == http.MethodPost:
		f.createSession(w, r, s)
	case strings.HasPrefix(p, "/process/session/"):
		f.sessionRoute(w, r, s, strings.Split(strings.TrimPrefix(p, "/process/session/"), "/"))
	default:
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "no route"))
	}
}

// bulkUpload takes files[i].path parts, each before its files[i].file.
func (f *Fake) bulkUpload(w http.ResponseWriter, r *http.Request, s *sandbox) {
	mr, err := r.MultipartReader()
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "multipart form expected"))
		return
	}
	paths := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, err.Error()))
			return
		}
		if msg := f.uploadPart(s, part.FormName(), part, paths); msg != "" {
			writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, msg))
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (f *Fake) uploadPart(s *sandbox, name string, r io.Reader, paths map[string]string) string {
	if idx, ok := strings.CutSuffix(name, ".path"); ok {
		b, _ := io.ReadAll(r)
		paths[idx] = string(b)
		return ""
	}
	idx, ok := strings.CutSuffix(name, ".file")
	if !ok {
		return "unexpected part " + name
	}
	p, ok := paths[idx]
	if !ok {
		return "part " + name + " came before its .path"
	}
	dst, ok := s.resolve(p)
	if !ok {
		return "invalid path " + p
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err.Error()
	}
	out, err := os.Create(dst)
	if err != nil {
		return err.Error()
	}
	defer out.Close()
	if _, err := io.Copy(out, r); err != nil {
		return err.Error()
	}
	return ""
}

func (f *Fake) download(w http.ResponseWriter, r *http.Request, s *sandbox) {
	dst, ok := s.resolve(r.URL.Query().Get("path"))
	if !ok {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "invalid path"))
		return
	}
	file, err := os.Open(dst)
	if err != nil {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "file not found"))
		return
	}
	defer file.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = io.Copy(w, file)
}

// bulkDownload answers each path as a multipart part named "file" (its
// file name is the path) or, when it cannot be read, one named "error".
func bulkDownload(w http.ResponseWriter, r *http.Request, s *sandbox) {
	var req struct {
		Paths []string `json:"paths"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Paths == nil {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "paths is required"))
		return
	}
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", mw.FormDataContentType())
	for _, p := range req.Paths {
		dst, ok := s.resolve(p)
		b, err := os.ReadFile(dst)
		if !ok || err != nil {
			part, _ := mw.CreateFormField("error")
			_ = json.NewEncoder(part).Encode(map[string]any{"source": p, "message": "file not found", "statusCode": 404})
			continue
		}
		part, _ := mw.CreateFormFile("file", p)
		_, _ = part.Write(b)
	}
	_ = mw.Close()
}

func (f *Fake) createSession(w http.ResponseWriter, r *http.Request, s *sandbox) {
	var req struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.SessionID == "" {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "sessionId is required"))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := s.sessions[req.SessionID]; ok {
		writeJSON(w, http.StatusConflict, errorBody(http.StatusConflict, "session exists"))
		return
	}
	s.sessions[req.SessionID] = &session{commands: map[string]*command{}}
	w.WriteHeader(http.StatusCreated)
}

// sessionRoute serves {sid}/exec, {sid}/command/{cid} and its /logs.
func (f *Fake) sessionRoute(w http.ResponseWriter, r *http.Request, s *sandbox, parts []string) {
	f.mu.Lock()
	ss := s.sessions[parts[0]]
	f.mu.Unlock()
	if ss == nil {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "session not found"))
		return
	}
	switch {
	case len(parts) == 2 && parts[1] == "exec" && r.Method == http.MethodPost:
		f.exec(w, r, s, ss)
	case len(parts) >= 3 && parts[1] == "command" && r.Method == http.MethodGet:
		f.mu.Lock()
		c := ss.commands[parts[2]]
		f.mu.Unlock()
		if c == nil {
			writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "command not found"))
			return
		}
		commandInfo(w, r, c, len(parts) == 4 && parts[3] == "logs")
	default:
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "no route"))
	}
}

func (f *Fake) exec(w http.ResponseWriter, r *http.Request, s *sandbox, ss *session) {
	var req struct {
		Command  string `json:"command"`
		RunAsync bool   `json:"runAsync"`
		Async    bool   `json:"async"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Command == "" {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "command is required"))
		return
	}
	if !req.RunAsync && !req.Async {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "this fake runs session commands with runAsync only"))
		return
	}
	c := &command{id: newID(), script: req.Command}
	f.mu.Lock()
	env := s.env
	f.mu.Unlock()
	if err := c.start(s.home, env); err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody(http.StatusInternalServerError, err.Error()))
		return
	}
	f.mu.Lock()
	ss.commands[c.id] = c
	f.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]any{"cmdId": c.id})
}

// commandInfo answers the Command, or its logs (JSON when asked for,
// text/plain otherwise, as the spec allows both).
func commandInfo(w http.ResponseWriter, r *http.Request, c *command, logs bool) {
	out, code := c.snapshot()
	if !logs {
		body := map[string]any{"id": c.id, "command": c.script}
		if code != nil {
			body["exitCode"] = *code
		}
		writeJSON(w, http.StatusOK, body)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, map[string]string{"output": out, "stdout": out, "stderr": ""})
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, out)
}
