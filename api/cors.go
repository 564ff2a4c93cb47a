package api

import (
	"net/http"
	"strings"
)

// DefaultCORSOrigins is used when Config.CORSOrigins is empty.
var DefaultCORSOrigins = []string{"http://localhost:*", "https://libra.dev"}

const (
	corsAllowMethods  = "GET, POST, OPTIONS"
	corsAllowHeaders  = "Authorization, Content-Type, X-Request-Id"
	corsExposeHeaders = "X-Request-Id, Retry-After"
	corsMaxAge        = "600"
)

// originMatcher matches an Origin header against an allow-list.
//
// A pattern is an exact origin, "*" (any origin), or an origin with one '*'.
// A '*' right after ':' stands for a port (digits, or no port at all, since
// browsers leave out :80 and :443); elsewhere it stands for one or more
// host-name characters, so "https://*.example.com" allows subdomains. No '*'
// ever matches '/', ':' or '@', so a pattern cannot be stretched over a
// different host, e.g. "http://localhost:80@evil.example".
type originMatcher struct {
	any      bool
	exact    map[string]bool
	patterns [][2]string // prefix, suffix around the '*'
}

func newOriginMatcher(patterns []string) originMatcher {
	m := originMatcher{exact: map[string]bool{}}
	for _, p := range patterns {
		p = strings.TrimSuffix(strings.TrimSpace(p), "/")
		switch {
		case p == "":
		case p == "*":
			m.any = true
		case strings.Count(p, "*") == 1:
			i := strings.IndexByte(p, '*')
			m.patterns = append(m.patterns, [2]string{strings.ToLower(p[:i]), strings.ToLower(p[i+1:])})
		default:
			m.exact[strings.ToLower(p)] = true
		}
	}
	return m
}

func (m originMatcher) allowed(origin string) bool {
	if origin == "" {
		return false
	}
	if m.any {
		return true
	}
	o := strings.ToLower(origin)
	if m.exact[o] {
		return true
	}
	for _, p := range m.patterns {
		prefix, suffix := p[0], p[1]
		if strings.HasSuffix(prefix, ":") && suffix == "" && o == prefix[:len(prefix)-1] {
			return true // the default port, which browsers leave out
		}
		if len(o) <= len(prefix)+len(suffix) || !strings.HasPrefix(o, prefix) || !strings.HasSuffix(o, suffix) {
			continue
		}
		mid := o[len(prefix) : len(o)-len(suffix)]
		if strings.HasSuffix(prefix, ":") {
			if isPort(mid) {
				return true
			}
		} else if isHostChars(mid) {
			return true
		}
	}
	return false
}

func isPort(s string) bool {
	if len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHostChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// cors answers preflight requests and marks responses to allowed origins.
// Credentials are allowed (the session cookie), so the origin is echoed,
// never "*".
func (s *server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		// Responses differ by Origin; a shared cache must not hand one
		// origin's answer to another.
		h.Add("Vary", "Origin")
		ok := s.origins.allowed(origin)
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if ok {
				h.Set("Access-Control-Allow-Methods", corsAllowMethods)
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", corsMaxAge)
			}
			// A refused preflight is still answered: the missing headers
			// are what tells the browser no.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}
