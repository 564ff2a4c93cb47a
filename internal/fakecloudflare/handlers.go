package fakecloudflare

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/zeebo/blake3"
)

// maxBody bounds a request body the fake reads (Cloudflare: 100 MB).
const maxBody = 100 << 20

// uploadAssets takes one bucket: a part per file, named by its hash,
// base64 content. The session's upload JWT is the only credential.
func (f *Fake) uploadAssets(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("base64") != "true" {
		writeError(w, http.StatusBadRequest, 10021, "base64=true is required")
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	parts, err := readParts(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, 10021, "invalid multipart body: "+err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.verify(token, "upload")
	if err == nil && f.expire > 0 {
		f.expire--
		err = errBadToken
	}
	if err != nil || r.PathValue("account") != f.AccountID {
		writeError(w, http.StatusUnauthorized, 10000, "Authentication error: "+errBadToken.Error())
		return
	}
	for _, p := range parts {
		if msg := f.storeAsset(s, p); msg != "" {
			writeError(w, http.StatusBadRequest, 10021, msg)
			return
		}
	}
	if len(s.pending) > 0 {
		writeResult(w, http.StatusAccepted, map[string]any{})
		return
	}
	writeResult(w, http.StatusCreated, map[string]any{"jwt": f.sign(s.id, "complete")})
}

// storeAsset checks one uploaded part against the session and keeps it;
// f.mu is held. It returns what was wrong, "" when nothing.
func (f *Fake) storeAsset(s *session, p part) string {
	p2, want := s.pending[p.name]
	if !want {
		if _, have := f.assets[p.name]; have {
			return "" // uploaded again by a retry: harmless
		}
		return "asset " + p.name + " was not asked for in this session"
	}
	content, err := base64.StdEncoding.DecodeString(string(p.body))
	if err != nil {
		return "asset " + p.name + " is not base64"
	}
	if wranglerHash(content, p2) != p.name {
		return "asset " + p.name + " does not match its hash"
	}
	f.assets[p.name] = storedAsset{Content: content, ContentType: p.contentType}
	f.uploads = append(f.uploads, p.name)
	delete(s.pending, p.name)
	return ""
}

// wranglerHash recomputes an asset's hash the documented way, on its own,
// so that a client computing it wrongly is caught here.
func wranglerHash(content []byte, name string) string {
	sum := blake3.Sum256([]byte(base64.StdEncoding.EncodeToString(content) + strings.TrimPrefix(path.Ext(name), ".")))
	return hex.EncodeToString(sum[:16])
}

type part struct {
	name, filename, contentType string
	body                        []byte
}

func readParts(r *http.Request) ([]part, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, errNotMultipart
	}
	mr := multipart.NewReader(io.LimitReader(r.Body, maxBody), params["boundary"])
	var out []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		out = append(out, part{name: p.FormName(), filename: p.FileName(), contentType: p.Header.Get("Content-Type"), body: b})
	}
}

var errNotMultipart = &badRequest{"a multipart/form-data body is required"}

type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

var datePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// putScript stores a Worker: metadata plus modules; an assets JWT must be
// a completion token of a session opened for this same Worker.
func (f *Fake) putScript(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	parts, err := readParts(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, 10021, "invalid multipart body: "+err.Error())
		return
	}
	meta, modules, msg := scriptParts(parts)
	if msg != "" {
		writeError(w, http.StatusBadRequest, 10021, msg)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sc := &Script{Name: r.PathValue("script"), Namespace: r.PathValue("namespace"), Metadata: meta, Modules: modules, ModifiedAt: time.Now().UTC()}
	if msg := f.redeemAssets(sc, meta, scriptKey(r)); msg != "" {
		writeError(w, http.StatusBadRequest, 10021, msg)
		return
	}
	if old, ok := f.scripts[scriptKey(r)]; ok {
		sc.Subdomain, sc.Uploads = old.Subdomain, old.Uploads
	}
	sc.Uploads++
	f.scripts[scriptKey(r)] = sc
	writeResult(w, http.StatusOK, map[string]any{
		"id": sc.Name, "etag": newID(), "created_on": sc.ModifiedAt, "modified_on": sc.ModifiedAt,
		"has_assets": sc.Assets != nil, "has_modules": len(modules) > 0, "startup_time_ms": 1,
	})
}

// scriptParts splits a Worker upload into its metadata and modules and
// checks what Cloudflare checks; msg says what is wrong.
func scriptParts(parts []part) (meta map[string]any, modules map[string][]byte, msg string) {
	modules = map[string][]byte{}
	for _, p := range parts {
		if p.name == "metadata" {
			if err := json.Unmarshal(p.body, &meta); err != nil {
				return nil, nil, "metadata is not JSON"
			}
			continue
		}
		modules[p.name] = p.body
	}
	if meta == nil {
		return nil, nil, "metadata part is required"
	}
	main, _ := meta["main_module"].(string)
	if _, ok := modules[main]; main != "" && !ok {
		return nil, nil, "main_module " + main + " is not among the uploaded parts"
	}
	if _, hasAssets := meta["assets"]; main == "" && !hasAssets {
		return nil, nil, "a Worker needs a main_module or assets"
	}
	if d, ok := meta["compatibility_date"].(string); ok && !datePattern.MatchString(d) {
		return nil, nil, "compatibility_date must be YYYY-MM-DD"
	}
	return meta, modules, ""
}

// redeemAssets checks the metadata's assets JWT; f.mu is held.
func (f *Fake) redeemAssets(sc *Script, meta map[string]any, key string) string {
	assets, _ := meta["assets"].(map[string]any)
	if assets == nil {
		return ""
	}
	jwt, _ := assets["jwt"].(string)
	s, err := f.verify(jwt, "complete")
	if err != nil {
		return "assets.jwt is not a valid completion token"
	}
	if s.script != key {
		return "assets.jwt belongs to another Worker's upload session"
	}
	sc.Assets = s.manifest
	return ""
}

func (f *Fake) postScriptSubdomain(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Enabled == nil {
		writeError(w, http.StatusBadRequest, 10021, "enabled is required")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sc, ok := f.scripts[scriptKey(r)]
	if !ok {
		writeError(w, http.StatusNotFound, 10007, "This Worker does not exist on your account.")
		return
	}
	sc.Subdomain = *body.Enabled
	writeResult(w, http.StatusOK, map[string]any{"enabled": sc.Subdomain, "previews_enabled": false})
}

func (f *Fake) getScriptSubdomain(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sc, ok := f.scripts[scriptKey(r)]
	if !ok {
		writeError(w, http.StatusNotFound, 10007, "This Worker does not exist on your account.")
		return
	}
	writeResult(w, http.StatusOK, map[string]any{"enabled": sc.Subdomain, "previews_enabled": false})
}

// accountSubdomain is GET /accounts/{id}/workers/subdomain, which wrangler
// reads to name a Worker's workers.dev URL (not in the spec subset).
func (f *Fake) accountSubdomain(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	writeResult(w, http.StatusOK, map[string]any{"subdomain": f.Subdomain})
}

// getService is how wrangler asks whether a Worker exists before its first
// deploy (not in the spec subset): 404 with code 10007 when it does not.
func (f *Fake) getService(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sc, ok := f.scripts[r.PathValue("script")]
	if !ok {
		writeError(w, http.StatusNotFound, 10007, "This Worker does not exist on your account.")
		return
	}
	writeResult(w, http.StatusOK, map[string]any{"id": sc.Name, "default_environment": map[string]any{
		"environment": "production", "script": map[string]any{"id": sc.Name, "tag": sc.Name, "modified_on": sc.ModifiedAt},
	}})
}

// getDeployments lists a Worker's deployments (not in the spec subset):
// wrangler reads it to warn about versions it would overwrite. The fake
// models no versions, so the list is empty: every upload is simply live.
func (f *Fake) getDeployments(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	writeResult(w, http.StatusOK, map[string]any{"deployments": []any{}})
}

// putDomain attaches a Workers custom domain: the hostname must be in the
// zone named, and the Worker must exist.
func (f *Fake) putDomain(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	var body struct {
		Hostname string `json:"hostname"`
		Service  string `json:"service"`
		ZoneID   string `json:"zone_id"`
		ZoneName string `json:"zone_name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, 10021, "invalid JSON body")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case body.ZoneID != f.ZoneID || body.ZoneName != "" && body.ZoneName != f.ZoneName:
		writeError(w, http.StatusBadRequest, 100117, "zone_id/zone_name is not a zone of this account")
		return
	case body.Hostname != f.ZoneName && !strings.HasSuffix(body.Hostname, "."+f.ZoneName):
		writeError(w, http.StatusBadRequest, 100117, "hostname "+body.Hostname+" is not in zone "+f.ZoneName)
		return
	case f.scripts[body.Service] == nil:
		writeError(w, http.StatusBadRequest, 10007, "This Worker does not exist on your account.")
		return
	}
	f.domains[body.Hostname] = body.Service
	writeResult(w, http.StatusOK, map[string]any{
		"id": newID(), "cert_id": "9fdf92c8-64c2-4a3d-b1af-e15304961145", "environment": "production",
		"hostname": body.Hostname, "service": body.Service, "zone_id": f.ZoneID, "zone_name": f.ZoneName,
	})
}
