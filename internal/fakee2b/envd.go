package fakee2b

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

func (f *Fake) serveEnvd(w http.ResponseWriter, r *http.Request, p string) {
	if p == "/health" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s := f.lookup(r.Header.Get("E2b-Sandbox-Id"))
	if s == nil {
		// E2B's edge answers 502 for a sandbox that is not running.
		writeJSON(w, http.StatusBadGateway, map[string]any{"message": "The sandbox was not found", "sandboxId": r.Header.Get("E2b-Sandbox-Id"), "code": 502})
		return
	}
	if r.Header.Get("X-Access-Token") != s.token {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "invalid access token"})
		return
	}
	switch {
	case p == "/files" && r.Method == http.MethodPost:
		f.upload(w, r, s)
	case p == "/files" && r.Method == http.MethodGet:
		f.download(w, r, s)
	case p == "/process.Process/Start" && r.Method == http.MethodPost:
		f.start(w, r, s)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "no route"})
	}
}

func envdError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"code": code, "message": msg})
}

func (f *Fake) upload(w http.ResponseWriter, r *http.Request, s *sandbox) {
	body, name, err := uploadBody(r)
	if err != nil {
		envdError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q := r.URL.Query().Get("path"); q != "" {
		name = q
	}
	dst, ok := s.resolve(name)
	if !ok {
		envdError(w, http.StatusBadRequest, "invalid path")
		return
	}
	if err := writeFile(dst, body); err != nil {
		envdError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, []map[string]string{{"path": dst, "name": filepath.Base(dst), "type": "file"}})
}

// uploadBody is the file of an upload, raw (application/octet-stream,
// path in the query) or as the "file" part of a multipart form (the part's
// file name is the path when the query has none), as envd.yaml allows.
func uploadBody(r *http.Request) (io.Reader, string, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/octet-stream":
		return r.Body, "", nil
	case "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, "", err
		}
		for {
			part, err := mr.NextPart()
			if err != nil {
				return nil, "", errors.New("multipart form without a file part")
			}
			if part.FormName() == "file" {
				return part, part.FileName(), nil
			}
		}
	default:
		return nil, "", fmt.Errorf("unsupported upload content type %q", ct)
	}
}

func writeFile(dst string, body io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (f *Fake) download(w http.ResponseWriter, r *http.Request, s *sandbox) {
	dst, ok := s.resolve(r.URL.Query().Get("path"))
	if !ok {
		envdError(w, http.StatusBadRequest, "invalid path")
		return
	}
	file, err := os.Open(dst)
	if err != nil {
		envdError(w, http.StatusNotFound, "file not found")
		return
	}
	defer file.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = io.Copy(w, file)
}

// start serves process.Process/Start: one request envelope in, a stream
// of StartResponse envelopes out, then the end-of-stream envelope.
func (f *Fake) start(w http.ResponseWriter, r *http.Request, s *sandbox) {
	if r.Header.Get("Content-Type") != "application/connect+json" {
		envdError(w, http.StatusUnsupportedMediaType, "application/connect+json expected")
		return
	}
	var req struct {
		Process struct {
			Cmd  string            `json:"cmd"`
			Args []string          `json:"args"`
			Envs map[string]string `json:"envs"`
			Cwd  string            `json:"cwd"`
		} `json:"process"`
	}
	payload, err := readFrame(r.Body)
	if err == nil {
		err = json.Unmarshal(payload, &req)
	}
	w.Header().Set("Content-Type", "application/connect+json")
	st := &stream{w: w}
	if err != nil || req.Process.Cmd == "" {
		st.end(map[string]any{"error": map[string]string{"code": "invalid_argument", "message": "process.cmd is required"}})
		return
	}
	cmd := exec.Command(req.Process.Cmd, req.Process.Args...)
	cmd.Dir = s.home
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.home, "npm_config_cache=" + filepath.Join(s.home, ".npm")}
	for k, v := range req.Process.Envs {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	f.run(st, s, cmd)
}

// run starts cmd and streams its output as data events.
func (f *Fake) run(st *stream, s *sandbox, cmd *exec.Cmd) {
	cmd.Stdout = eventWriter{st, "stdout"}
	cmd.Stderr = eventWriter{st, "stderr"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		st.end(map[string]any{"error": map[string]string{"code": "internal", "message": err.Error()}})
		return
	}
	f.mu.Lock()
	s.procs = append(s.procs, cmd)
	f.mu.Unlock()
	st.event(map[string]any{"start": map[string]any{"pid": cmd.Process.Pid}})
	err := cmd.Wait()
	end := map[string]any{"exited": true, "status": "exit status 0"}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() < 0 {
			end = map[string]any{"exited": false, "status": "signal: killed"}
		} else {
			end = map[string]any{"exitCode": ee.ExitCode(), "exited": true, "status": fmt.Sprintf("exit status %d", ee.ExitCode())}
		}
	}
	st.event(map[string]any{"end": end})
	st.end(map[string]any{})
}

// stream writes envelopes one at a time, flushing each.
type stream struct {
	mu sync.Mutex
	w  http.ResponseWriter
}

func (st *stream) event(ev map[string]any) { st.write(0, map[string]any{"event": ev}) }
func (st *stream) end(msg map[string]any)  { st.write(2, msg) }

func (st *stream) write(flag byte, msg any) {
	b, _ := json.Marshal(msg)
	st.mu.Lock()
	defer st.mu.Unlock()
	var head [5]byte
	head[0] = flag
	binary.BigEndian.PutUint32(head[1:], uint32(len(b)))
	_, _ = st.w.Write(head[:])
	_, _ = st.w.Write(b)
	if fl, ok := st.w.(http.Flusher); ok {
		fl.Flush()
	}
}

// eventWriter turns a process's writes into data events (bytes as base64,
// as the protobuf JSON mapping has them).
type eventWriter struct {
	st   *stream
	kind string
}

func (e eventWriter) Write(p []byte) (int, error) {
	e.st.event(map[string]any{"data": map[string]string{e.kind: base64.StdEncoding.EncodeToString(p)}})
	return len(p), nil
}

func readFrame(r io.Reader) ([]byte, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	if head[0] != 0 {
		return nil, errors.New("unexpected flags " + strings.TrimSpace(fmt.Sprint(head[0])))
	}
	b := make([]byte, binary.BigEndian.Uint32(head[1:]))
	_, err := io.ReadFull(r, b)
	return b, err
}
