package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"

	libra "github.com/libra-deploy/libra-deploy"
)

// requireAdmin serves h only to a caller that sends ADMIN_TOKEN or a token
// made with `token create --admin`. No credential, or one the service does
// not know, is 401; a valid user token is 403: it is known, but may not
// see the operator's views.
func (s *server) requireAdmin(h http.Handler) http.Handler {
	h = crossOriginGuard(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, present := tokenFrom(r)
		if !present {
			writeError(w, unauthorized("admin authentication required: send Authorization: Bearer <ADMIN_TOKEN>"))
			return
		}
		if token == "" || len(token) > maxTokenLen {
			writeError(w, unauthorized("invalid token"))
			return
		}
		if s.isAdminToken(token) {
			h.ServeHTTP(w, r)
			return
		}
		if e := s.checkAdminRow(r, token); e != nil {
			writeError(w, e)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isAdminToken compares hashes, in constant time: the comparison then
// takes as long whatever the token's length and content.
func (s *server) isAdminToken(token string) bool {
	if s.cfg.AdminToken == "" {
		return false
	}
	got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(s.cfg.AdminToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// checkAdminRow accepts a stored token with the admin flag (nil); it
// tells a user token (403) from an unknown one (401).
func (s *server) checkAdminRow(r *http.Request, token string) *ErrorResponse {
	hash := HashToken(token)
	t, err := s.cfg.Store.TokenByHash(r.Context(), hash)
	switch {
	case errors.Is(err, libra.ErrNotFound):
		return unauthorized("invalid token")
	case err != nil:
		return clientError(r.Context(), "token lookup", fmt.Errorf("token by hash: %w", err))
	case t == nil || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1:
		// As authenticate: a store that matched loosely lets nothing in.
		return unauthorized("invalid token")
	case !t.Admin:
		return newError(http.StatusForbidden, libra.CodeForbidden, "this route needs an admin token; a user token may not use it", nil)
	}
	return nil
}

// crossOriginGuard refuses cross-site writes: an admin token may travel as
// the session cookie (a browser on the queue console), and the console can
// cancel and delete jobs, so another site must not make a browser post to
// it. Requests without browser headers (curl, Prometheus) pass.
func crossOriginGuard(h http.Handler) http.Handler {
	guard := http.NewCrossOriginProtection()
	guard.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newError(http.StatusForbidden, libra.CodeForbidden, "cross-origin request refused on an admin route", nil))
	}))
	return guard.Handler(h)
}
