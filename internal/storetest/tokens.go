package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// testTokenLifecycle: ids, expiry round-trip, listing per org, revoke scoped
// to the org, and last use written at most once a TokenTouchInterval.
func testTokenLifecycle(t *testing.T, s libra.Store) {
	created := libra.Now()
	expires := created.Add(time.Hour)
	mustToken(t, s, libra.Token{Hash: "ha", OrgID: "o", UserID: "u1", CreatedAt: created})
	withExpiry := libra.Token{Hash: "hb", OrgID: "o", UserID: "u2", CreatedAt: created.Add(time.Second)}
	withExpiry.ID, withExpiry.ExpiresAt = "tok_b", &expires
	mustToken(t, s, withExpiry)
	mustToken(t, s, libra.Token{Hash: "hc", OrgID: "other", UserID: "u3", CreatedAt: created})

	list, err := s.ListTokens(ctx, "o")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].UserID != "u1" || list[1].ID != "tok_b" {
		t.Fatalf("tokens of o: %+v", list)
	}
	if !strings.HasPrefix(list[0].ID, "tok_") || list[0].ExpiresAt != nil || list[0].LastUsedAt != nil {
		t.Fatalf("a token created without id or expiry: %+v", list[0])
	}
	if list[1].ExpiresAt == nil || !sameTime(*list[1].ExpiresAt, expires) {
		t.Fatalf("expiry: %+v, want %v", list[1].ExpiresAt, expires)
	}
	if empty, err := s.ListTokens(ctx, "nobody"); err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("tokens of an org without any: %v, %v; want an empty slice", empty, err)
	}
	checkRevoke(t, s, list[0].ID)
	checkTouch(t, s, created)
}

func mustToken(t *testing.T, s libra.Store, tok libra.Token) {
	t.Helper()
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
}

// checkRevoke: another org cannot revoke the token; its own org can, once,
// and the token is gone from every lookup.
func checkRevoke(t *testing.T, s libra.Store, id string) {
	t.Helper()
	if err := s.RevokeToken(ctx, "other", id); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("revoke through another org: %v, want ErrNotFound", err)
	}
	if _, err := s.TokenByHash(ctx, "ha"); err != nil {
		t.Fatalf("token gone after another org's failed revoke: %v", err)
	}
	if err := s.RevokeToken(ctx, "o", id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx, "ha"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("revoked token still found: %v", err)
	}
	if err := s.RevokeToken(ctx, "o", id); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("second revoke: %v, want ErrNotFound", err)
	}
	// The CLI revokes in any org ("").
	other, err := s.ListTokens(ctx, "other")
	if err != nil || len(other) != 1 {
		t.Fatalf("tokens of other: %v, %v", other, err)
	}
	if err := s.RevokeToken(ctx, "", other[0].ID); err != nil {
		t.Fatalf("revoke in any org: %v", err)
	}
	if _, err := s.TokenByHash(ctx, "hc"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("token revoked in any org still found: %v", err)
	}
}

// checkTouch: the first use is written; a second within the interval is
// not; one past the interval is.
func checkTouch(t *testing.T, s libra.Store, start time.Time) {
	t.Helper()
	steps := []struct {
		at, want time.Time
	}{
		{start, start},
		{start.Add(30 * time.Second), start},
		{start.Add(libra.TokenTouchInterval + time.Second), start.Add(libra.TokenTouchInterval + time.Second)},
	}
	for i, st := range steps {
		if err := s.TouchToken(ctx, "hb", st.at); err != nil {
			t.Fatal(err)
		}
		tok, err := s.TokenByHash(ctx, "hb")
		if err != nil {
			t.Fatal(err)
		}
		if tok.LastUsedAt == nil || !sameTime(*tok.LastUsedAt, st.want) {
			t.Fatalf("touch %d at %v: lastUsedAt %v, want %v", i, st.at, tok.LastUsedAt, st.want)
		}
	}
}
