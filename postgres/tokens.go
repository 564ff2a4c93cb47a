package postgres

import (
	"context"
	"fmt"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/storesql"
)

// CreateToken stores a token's hash, with a new public id when it has none.
func (db *DB) CreateToken(ctx context.Context, t libra.Token) error {
	args, err := storesql.InsertTokenArgs(t)
	if err != nil {
		return err
	}
	if _, err := db.Pool.Exec(ctx, pg(storesql.InsertToken), args...); err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	return nil
}

// TokenByHash finds a token by its hash.
func (db *DB) TokenByHash(ctx context.Context, hash string) (*libra.Token, error) {
	t, err := storesql.ScanToken(db.Pool.QueryRow(ctx, pg(storesql.SelectToken), hash))
	if noRows(err) {
		return nil, fmt.Errorf("token: %w", libra.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select token: %w", err)
	}
	return t, nil
}

// ListTokens returns an org's tokens, oldest first.
func (db *DB) ListTokens(ctx context.Context, orgID string) ([]libra.Token, error) {
	rows, err := db.Pool.Query(ctx, pg(storesql.ListTokens), orgID)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := collect(rows, storesql.ScanTokenValue)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken deletes a token by id, within orgID unless it is "".
func (db *DB) RevokeToken(ctx context.Context, orgID, id string) error {
	tag, err := db.Pool.Exec(ctx, pg(storesql.RevokeToken), storesql.RevokeTokenArgs(orgID, id)...)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("token %q: %w", id, libra.ErrNotFound)
	}
	return nil
}

// TouchToken records a use of the token, at most once a TokenTouchInterval.
func (db *DB) TouchToken(ctx context.Context, hash string, now time.Time) error {
	if _, err := db.Pool.Exec(ctx, pg(storesql.TouchToken), storesql.TouchTokenArgs(hash, now)...); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
}
