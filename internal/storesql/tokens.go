package storesql

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Token queries. Neither list nor any other read returns a token's hash to
// a caller outside the store's auth lookup: ListTokens scans it but the API
// never shows it.
const (
	InsertToken = `INSERT INTO tokens (hash, org_id, user_id, created_at, id, expires_at, admin) VALUES (?, ?, ?, ?, ?, ?, ?)`
	SelectToken = `SELECT ` + TokenColumns + ` FROM tokens WHERE hash = ?`
	ListTokens  = `SELECT ` + TokenColumns + ` FROM tokens WHERE org_id = ? ORDER BY created_at, id`
	// RevokeToken with '' as the org deletes the id in any org (the CLI).
	RevokeToken = `DELETE FROM tokens WHERE id = ? AND (? = '' OR org_id = ?)`
	// TouchToken writes only when the stored last use is older than the
	// cutoff, so that nodes racing on one token write once a minute.
	TouchToken = `UPDATE tokens SET last_used_at = ? WHERE hash = ? AND (last_used_at IS NULL OR last_used_at <= ?)`
)

// TokenColumns are what ScanToken reads.
const TokenColumns = `hash, org_id, user_id, created_at, id, last_used_at, expires_at, admin`

// ScanToken reads a row of TokenColumns.
func ScanToken(row Scanner) (*libra.Token, error) {
	var t libra.Token
	var created, admin int64
	var lastUsed, expires sql.NullInt64
	if err := row.Scan(&t.Hash, &t.OrgID, &t.UserID, &created, &t.ID, &lastUsed, &expires, &admin); err != nil {
		return nil, err
	}
	t.CreatedAt, t.Admin = FromMicros(created), admin != 0
	t.LastUsedAt = FromOptMicros(lastUsed)
	t.ExpiresAt = FromOptMicros(expires)
	return &t, nil
}

// ScanTokenValue is ScanToken for Collect.
func ScanTokenValue(row Scanner) (libra.Token, error) {
	t, err := ScanToken(row)
	if err != nil {
		return libra.Token{}, err
	}
	return *t, nil
}

// InsertTokenArgs are InsertToken's arguments; a token without an id gets
// a new one.
func InsertTokenArgs(t libra.Token) ([]any, error) {
	if t.ID == "" {
		id, err := NewTokenID()
		if err != nil {
			return nil, err
		}
		t.ID = id
	}
	return []any{t.Hash, t.OrgID, t.UserID, Micros(t.CreatedAt), t.ID, OptMicros(t.ExpiresAt), Flag(t.Admin)}, nil
}

// TouchTokenArgs are TouchToken's arguments for a use at now.
func TouchTokenArgs(hash string, now time.Time) []any {
	return []any{Micros(now), hash, Micros(now.Add(-libra.TokenTouchInterval))}
}

// RevokeTokenArgs are RevokeToken's arguments.
func RevokeTokenArgs(orgID, id string) []any { return []any{id, orgID, orgID} }

// NewTokenID returns a token's public id: 96 random bits, independent of
// the token's secret.
func NewTokenID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	return "tok_" + hex.EncodeToString(b), nil
}
