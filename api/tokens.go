package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	libra "github.com/libra-deploy/libra-deploy"
)

// Token lifecycle: an org lists its tokens and revokes one by its public id.
// Nothing here ever shows a token's secret or its hash.

// touchToken records that the token was used, when its stored last use is
// more than libra.TokenTouchInterval old: one write a minute per token, not
// one per request. A failed write costs only a stale lastUsedAt, so the
// request goes on.
func (s *server) touchToken(ctx context.Context, t *libra.Token) {
	now := libra.Now()
	if !t.TouchDue(now) {
		return
	}
	if err := s.cfg.Store.TouchToken(ctx, t.Hash, now); err != nil {
		loggerFrom(ctx).Warn("record token use", "token_id", t.ID, "error", err)
	}
}

// TokenItem is one token as its org sees it.
type TokenItem struct {
	ID         string     `json:"id" doc:"The token's public id, for DELETE /tokens/{tokenId}; not the secret."`
	UserID     string     `json:"userId"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt" doc:"When it last authenticated a request, to within a minute; null if never."`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty" doc:"When it stops working; absent for a token that does not expire."`
}

// TokenList is an org's tokens.
type TokenList struct {
	OrgID  string      `json:"orgId" doc:"The token's org."`
	Tokens []TokenItem `json:"tokens" doc:"Oldest first."`
}

type tokenListOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         TokenList
}

func tokenItem(t libra.Token) TokenItem {
	return TokenItem{ID: t.ID, UserID: t.UserID, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, ExpiresAt: t.ExpiresAt}
}

func (s *server) listTokens(ctx context.Context, _ *struct{}) (*tokenListOutput, error) {
	org := tokenOf(ctx).OrgID
	tokens, err := s.cfg.Store.ListTokens(ctx, org)
	if err != nil {
		return nil, clientError(ctx, "list tokens", fmt.Errorf("tokens of org %s: %w", org, err))
	}
	out := TokenList{OrgID: org, Tokens: make([]TokenItem, 0, len(tokens))}
	for _, t := range tokens {
		out.Tokens = append(out.Tokens, tokenItem(t))
	}
	return &tokenListOutput{CacheControl: "no-store", Body: out}, nil
}

type tokenPath struct {
	ID string `path:"tokenId" maxLength:"64" doc:"The token's public id, as GET /tokens shows it."`
}

// revokeToken deletes a token of the caller's org. Another org's token is
// 404, as if it did not exist, so ids of other orgs cannot be probed.
func (s *server) revokeToken(ctx context.Context, in *tokenPath) (*deletedOutput, error) {
	caller := tokenOf(ctx)
	err := s.cfg.Store.RevokeToken(ctx, caller.OrgID, in.ID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, newError(http.StatusNotFound, libra.CodeNotFound, "token not found", nil)
	}
	if err != nil {
		return nil, clientError(ctx, "revoke token", fmt.Errorf("revoke %s: %w", in.ID, err))
	}
	loggerFrom(ctx).Info("token revoked", "token_id", in.ID, "org_id", caller.OrgID, "by", caller.ID)
	return &deletedOutput{Body: Deleted{Success: true, Message: "token " + in.ID + " revoked", Timestamp: libra.Now()}}, nil
}

// registerTokens adds the routes of this file.
func (s *server) registerTokens(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "listTokens",
		Method:      http.MethodGet,
		Path:        "/tokens",
		Summary:     "List the org's tokens",
		Description: "Every API token of the caller's org: id, user, creation, last use and expiry. Never a secret or its hash.",
		Tags:        []string{"Tokens"},
		Security:    tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate},
		Errors:      []int{401, 429},
	}, s.listTokens)

	huma.Register(api, huma.Operation{
		OperationID: "revokeToken",
		Method:      http.MethodDelete,
		Path:        "/tokens/{tokenId}",
		Summary:     "Revoke a token",
		Description: "Deletes a token of the caller's org; every node refuses it from then on (tokens are not cached). " +
			"A token may revoke itself. Another org's token is 404.",
		Tags:        []string{"Tokens"},
		Security:    tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate},
		Errors:      []int{401, 404, 429},
	}, s.revokeToken)
}
