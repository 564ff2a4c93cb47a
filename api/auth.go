package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"golang.org/x/time/rate"

	libra "github.com/libra-deploy/libra-deploy"
)

// TokenPrefix starts every token the service issues, so that secret
// scanners and people can tell a libra-deploy token when they see one.
const TokenPrefix = "ld_"

// maxTokenLen bounds what is hashed and looked up for a request; issued
// tokens are 46 characters.
const maxTokenLen = 256

// NewToken returns a new API token: "ld_" and 32 random bytes, base64url.
// Only HashToken's result may be stored.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashToken returns the hex SHA-256 of a token, the form the store keeps.
// A plain hash is enough: tokens carry 256 random bits, so there is nothing
// for a slow hash to protect against.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenFrom reads the credential: the Authorization header wins over the
// session cookie when both are sent.
func tokenFrom(r *http.Request) (token string, present bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", true
		}
		return strings.TrimSpace(rest), true
	}
	if c, err := r.Cookie("session"); err == nil {
		return c.Value, true
	}
	return "", false
}

// tokenOf returns the token that authenticated the request.
func tokenOf(ctx context.Context) *libra.Token {
	t, _ := ctx.Value(keyToken).(*libra.Token)
	return t
}

func unauthorized(msg string) *ErrorResponse {
	e := newError(http.StatusUnauthorized, libra.CodeUnauthorized, msg, nil)
	e.GetHeaders().Set("WWW-Authenticate", `Bearer realm="libra-deploy"`)
	return e
}

// authenticate is the Huma middleware of every operation that needs a token.
func (s *server) authenticate(ctx huma.Context, next func(huma.Context)) {
	s.authenticateIn(s.limits, ctx, next)
}

// authenticateIn authenticates and takes the request from the token's
// bucket in limits.
func (s *server) authenticateIn(limits *limiters, ctx huma.Context, next func(huma.Context)) {
	r, _ := humago.Unwrap(ctx)
	token, present := tokenFrom(r)
	if !present {
		writeHumaError(ctx, unauthorized("authentication required: send Authorization: Bearer <token> or the session cookie"))
		return
	}
	if token == "" || len(token) > maxTokenLen {
		writeHumaError(ctx, unauthorized("invalid token"))
		return
	}
	hash := HashToken(token)
	t, err := s.cfg.Store.TokenByHash(ctx.Context(), hash)
	if errors.Is(err, libra.ErrNotFound) {
		writeHumaError(ctx, unauthorized("invalid token"))
		return
	}
	if err != nil {
		writeHumaError(ctx, clientError(ctx.Context(), "token lookup", fmt.Errorf("token by hash: %w", err)))
		return
	}
	// The store found the row by its hash; comparing again in constant time
	// keeps a store that matches loosely (case, prefix) from letting a
	// different token in, without a timing signal.
	if t == nil || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1 {
		writeHumaError(ctx, unauthorized("invalid token"))
		return
	}
	if t.Expired(libra.Now()) {
		writeHumaError(ctx, unauthorized("token expired"))
		return
	}
	s.touchToken(ctx.Context(), t)
	if ok, wait := limits.allow(hash, time.Now()); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		if secs < 1 {
			secs = 1
		}
		e := newError(http.StatusTooManyRequests, libra.CodeRateLimited,
			fmt.Sprintf("too many requests for this token; retry in %d s", secs),
			map[string]any{"retryAfterSeconds": secs})
		e.GetHeaders().Set("Retry-After", strconv.Itoa(secs))
		writeHumaError(ctx, e)
		return
	}
	next(huma.WithValue(ctx, keyToken, t))
}

// limiters holds one token bucket per token hash. Only tokens that
// authenticated get one, so the map is bounded by real tokens in use; idle
// buckets are dropped once they would be full again anyway.
type limiters struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiters(limit rate.Limit, burst int) *limiters {
	return &limiters{limit: limit, burst: burst, buckets: map[string]*bucket{}}
}

// allow takes one request from key's bucket, or says how long to wait.
func (ls *limiters) allow(key string, now time.Time) (bool, time.Duration) {
	if ls.limit == rate.Inf {
		return true, 0
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.sweep(now)
	b := ls.buckets[key]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(ls.limit, ls.burst)}
		ls.buckets[key] = b
	}
	b.seen = now
	res := b.l.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (ls *limiters) sweep(now time.Time) {
	if now.Sub(ls.lastSweep) < time.Minute {
		return
	}
	ls.lastSweep = now
	idle := 10 * time.Minute
	if ls.limit > 0 {
		if refill := time.Duration(float64(ls.burst) / float64(ls.limit) * float64(time.Second)); refill > idle {
			idle = refill
		}
	}
	for k, b := range ls.buckets {
		if now.Sub(b.seen) > idle {
			delete(ls.buckets, k)
		}
	}
}
