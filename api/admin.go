package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"

	libra "github.com/libra-deploy/libra-deploy"
)

// requireAdmin serves h only to a caller that sends the admin token.
// No credential, or one the service does not know, is 401; a valid user
// token is 403: it is known, but may not see the operator's views.
func (s *server) requireAdmin(h http.Handler) http.Handler {
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
		writeError(w, s.notAdmin(r, token))
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

// notAdmin tells a user token (403) from an unknown one (401).
func (s *server) notAdmin(r *http.Request, token string) *ErrorResponse {
	_, err := s.cfg.Store.TokenByHash(r.Context(), HashToken(token))
	switch {
	case errors.Is(err, libra.ErrNotFound):
		return unauthorized("invalid token")
	case err != nil:
		return clientError(r.Context(), "token lookup", fmt.Errorf("token by hash: %w", err))
	}
	return newError(http.StatusForbidden, libra.CodeForbidden, "this route needs the admin token; a user token may not use it", nil)
}
