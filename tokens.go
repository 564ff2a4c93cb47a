package libra

import (
	"context"
	"time"
)

// TokenLifecycle is what a token carries besides its credential: a public id
// to list and revoke it by, when it was last used and when it expires.
type TokenLifecycle struct {
	// ID is random, never derived from the secret, so showing it reveals
	// nothing. A store fills it in when CreateToken gets none.
	ID string
	// LastUsedAt is nil until the token authenticated a request; it lags
	// by up to TokenTouchInterval so that use does not cost a write per
	// request.
	LastUsedAt *time.Time
	// ExpiresAt is nil for a token that never expires.
	ExpiresAt *time.Time
}

// TokenTouchInterval is how stale a token's LastUsedAt may get before a
// request writes it again.
const TokenTouchInterval = time.Minute

// Expired reports whether the token is past its expiry at now.
func (l TokenLifecycle) Expired(now time.Time) bool {
	return l.ExpiresAt != nil && !now.Before(*l.ExpiresAt)
}

// TouchDue reports whether a request at now should record the token's use.
func (l TokenLifecycle) TouchDue(now time.Time) bool {
	return l.LastUsedAt == nil || now.Sub(*l.LastUsedAt) >= TokenTouchInterval
}

// TokenStore lists and revokes tokens and records their use. There is no
// token cache in any node: every request looks its token up in the store,
// so a revoke holds on every node from the moment it commits.
type TokenStore interface {
	// ListTokens returns an org's tokens, oldest first; an empty slice
	// when it has none.
	ListTokens(ctx context.Context, orgID string) ([]Token, error)
	// RevokeToken deletes the token with this id. With a non-empty orgID
	// only a token of that org is deleted; ErrNotFound when none was.
	RevokeToken(ctx context.Context, orgID, id string) error
	// TouchToken sets the token's LastUsedAt to now unless another request
	// (on any node) did so less than TokenTouchInterval before now: the
	// condition is in the write, so racing nodes write once.
	TouchToken(ctx context.Context, hash string, now time.Time) error
}
