package fakecloudflare

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

// session is one assets upload session: the manifest it was opened with
// and the hashes still to come.
type session struct {
	id       string
	script   string
	manifest map[string]string // "/path" → hash
	pending  map[string]string // hash → path (for its extension)
}

// claims are the fake's JWT claims: which session, what for, until when.
type claims struct {
	Session string `json:"sid"`
	Phase   string `json:"phase"` // "upload" or "complete"
	Expires int64  `json:"exp"`
}

var hashPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// createSession opens an upload session. Hashes the account already has
// are not asked for; with none missing, the answer's JWT is at once the
// completion token (as Cloudflare does).
func (f *Fake) createSession(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("account")) {
		return
	}
	var body struct {
		Manifest map[string]struct {
			Hash string `json:"hash"`
			Size int64  `json:"size"`
		} `json:"manifest"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Manifest == nil {
		writeError(w, http.StatusBadRequest, 10021, "manifest is required")
		return
	}
	s := &session{id: newID(), script: scriptKey(r), manifest: map[string]string{}, pending: map[string]string{}}
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, e := range body.Manifest {
		if !strings.HasPrefix(p, "/") || !hashPattern.MatchString(e.Hash) || e.Size < 0 || e.Size > 25<<20 {
			writeError(w, http.StatusBadRequest, 10021, "invalid manifest entry "+p)
			return
		}
		s.manifest[p] = e.Hash
		if _, have := f.assets[e.Hash]; !have {
			s.pending[e.Hash] = p
		}
	}
	f.sessions[s.id] = s
	if len(s.pending) == 0 {
		writeResult(w, http.StatusOK, map[string]any{"jwt": f.sign(s.id, "complete"), "buckets": []any{}})
		return
	}
	writeResult(w, http.StatusOK, map[string]any{"jwt": f.sign(s.id, "upload"), "buckets": f.buckets(s)})
}

// buckets splits a session's missing hashes into requests of BucketSize.
func (f *Fake) buckets(s *session) [][]string {
	hashes := make([]string, 0, len(s.pending))
	for h := range s.pending {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	var out [][]string
	for len(hashes) > 0 {
		n := min(f.BucketSize, len(hashes))
		out = append(out, hashes[:n])
		hashes = hashes[n:]
	}
	return out
}

// scriptKey names a Worker across namespaces.
func scriptKey(r *http.Request) string {
	if ns := r.PathValue("namespace"); ns != "" {
		return ns + "/" + r.PathValue("script")
	}
	return r.PathValue("script")
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var b64 = base64.RawURLEncoding

// sign makes an HS256 JWT for a session phase.
func (f *Fake) sign(sessionID, phase string) string {
	header := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	c, _ := json.Marshal(claims{Session: sessionID, Phase: phase, Expires: time.Now().Add(f.JWTTTL).Unix()})
	unsigned := header + "." + b64.EncodeToString(c)
	return unsigned + "." + b64.EncodeToString(f.mac(unsigned))
}

func (f *Fake) mac(s string) []byte {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

var errBadToken = errors.New("invalid or expired token")

// verify checks a JWT's signature, phase and expiry; f.mu must be held.
func (f *Fake) verify(token, phase string) (*session, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errBadToken
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, f.mac(parts[0]+"."+parts[1])) {
		return nil, errBadToken
	}
	raw, err := b64.DecodeString(parts[1])
	var c claims
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return nil, errBadToken
	}
	s, ok := f.sessions[c.Session]
	if !ok || c.Phase != phase || time.Now().Unix() > c.Expires {
		return nil, errBadToken
	}
	return s, nil
}
