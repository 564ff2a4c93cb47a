package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// WhoAmI is what a token stands for: a client that holds only the token
// (the CLI) learns from it the orgId and userId that POST /deploy needs.
type WhoAmI struct {
	OrgID   string `json:"orgId"`
	UserID  string `json:"userId"`
	TokenID string `json:"tokenId" doc:"The token's public id, as GET /tokens lists it; not the secret."`
}

type whoAmIOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         WhoAmI
}

func (s *server) whoAmI(ctx context.Context, _ *struct{}) (*whoAmIOutput, error) {
	t := tokenOf(ctx)
	return &whoAmIOutput{CacheControl: "no-store", Body: WhoAmI{OrgID: t.OrgID, UserID: t.UserID, TokenID: t.ID}}, nil
}

// registerWhoAmI adds GET /whoami.
func (s *server) registerWhoAmI(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "whoAmI",
		Method:      http.MethodGet,
		Path:        "/whoami",
		Summary:     "Get the token's org and user",
		Description: "The org and user the token belongs to, so a client holding only a token can fill in POST /deploy's orgId and userId.",
		Tags:        []string{"Tokens"},
		Security:    tokenSecurity,
		Middlewares: huma.Middlewares{s.authenticate},
		Errors:      []int{401, 429},
	}, s.whoAmI)
}
