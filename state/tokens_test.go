package state

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/secret"
)

func TestTokensAreStoredAsHashesAndAuthenticate(t *testing.T) {
	t.Parallel()
	db, ctx, clock := setupRuns(t)

	row, token, err := db.AddToken(ctx, TokenRequest{Name: "locust-ci", Scope: ScopeRunner,
		Grants: []string{"checkout-db", "tag:perf", "checkout-db"}, TTL: time.Hour, CreatedBy: "alice"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(token.RevealString(), TokenPrefix))
	require.Greater(t, token.Len(), 40)
	require.Equal(t, []string{"checkout-db", "tag:perf"}, row.Grants, "duplicates dropped, order kept")
	require.Equal(t, t0.Add(time.Hour), *row.ExpiresAt)

	// Nowhere in the table, in any column's text.
	var hits int
	require.NoError(t, db.pool.QueryRow(ctx, `SELECT count(*) FROM tokens t WHERE t::text LIKE '%' || $1 || '%'`,
		strings.TrimPrefix(token.RevealString(), TokenPrefix)).Scan(&hits))
	require.Zero(t, hits)

	got, err := db.AuthenticateToken(ctx, token)
	require.NoError(t, err)
	require.Equal(t, row, got)

	for _, bad := range []string{"", "swk_", "swk_nope", "Bearer " + token.RevealString(), token.RevealString() + "x"} {
		_, err := db.AuthenticateToken(ctx, secret.FromString(bad))
		require.ErrorIs(t, err, ErrTokenUnknown, bad)
	}

	clock.advance(time.Hour)
	got, err = db.AuthenticateToken(ctx, token)
	require.ErrorIs(t, err, ErrTokenExpired, "expires_at is exclusive")
	require.Equal(t, "locust-ci", got.Name, "the row comes with the error")

	_, err = db.RevokeToken(ctx, "locust-ci", "bob")
	require.NoError(t, err)
	got, err = db.AuthenticateToken(ctx, token)
	require.ErrorIs(t, err, ErrTokenRevoked, "revoked wins over expired")
	require.Equal(t, "bob", got.RevokedBy)
}

func TestTokenNamesAndRequestsAreChecked(t *testing.T) {
	t.Parallel()
	db, ctx, _ := setupRuns(t)

	_, _, err := db.AddToken(ctx, TokenRequest{Name: "admin", Scope: ScopeAdmin, CreatedBy: "alice"})
	require.NoError(t, err)
	_, _, err = db.AddToken(ctx, TokenRequest{Name: "admin", Scope: ScopeAdmin, CreatedBy: "alice"})
	require.ErrorIs(t, err, ErrTokenExists)

	for _, tc := range []struct {
		req   TokenRequest
		field string
	}{
		{TokenRequest{Name: "", Scope: ScopeAdmin, CreatedBy: "a"}, "name"},
		{TokenRequest{Name: "a b", Scope: ScopeAdmin, CreatedBy: "a"}, "name"},
		{TokenRequest{Name: "x", Scope: "root", CreatedBy: "a"}, "scope"},
		{TokenRequest{Name: "x", Scope: ScopeRunner, CreatedBy: "a"}, "grant"},
		{TokenRequest{Name: "x", Scope: ScopeRunner, Grants: []string{"tag:"}, CreatedBy: "a"}, "grant"},
		{TokenRequest{Name: "x", Scope: ScopeAdmin, Grants: []string{"p"}, CreatedBy: "a"}, "grant"},
		{TokenRequest{Name: "x", Scope: ScopeAdmin, TTL: -time.Second, CreatedBy: "a"}, "ttl"},
		{TokenRequest{Name: "x", Scope: ScopeAdmin}, "created_by"},
	} {
		_, _, err := db.AddToken(ctx, tc.req)
		var inv *InvalidRunError
		require.True(t, errors.As(err, &inv), "%+v: %v", tc.req, err)
		require.Equal(t, tc.field, inv.Field, "%+v", tc.req)
	}

	// Revoking frees the name; the revoked row stays for the record.
	_, err = db.RevokeToken(ctx, "admin", "alice")
	require.NoError(t, err)
	_, err = db.RevokeToken(ctx, "admin", "alice")
	require.ErrorIs(t, err, ErrNotFound)
	_, _, err = db.AddToken(ctx, TokenRequest{Name: "admin", Scope: ScopeAdmin, CreatedBy: "alice"})
	require.NoError(t, err)
	active, err := db.ListTokens(ctx, false)
	require.NoError(t, err)
	require.Len(t, active, 1)
	all, err := db.ListTokens(ctx, true)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.NotNil(t, all[0].RevokedAt)
}

func TestTokenLeasesAreOwned(t *testing.T) {
	t.Parallel()
	db, ctx, _ := setupRuns(t)
	a, _, err := db.AddToken(ctx, TokenRequest{Name: "a", Scope: ScopeRunner, Grants: []string{"p"}, CreatedBy: "t"})
	require.NoError(t, err)
	b, _, err := db.AddToken(ctx, TokenRequest{Name: "b", Scope: ScopeRunner, Grants: []string{"p"}, CreatedBy: "t"})
	require.NoError(t, err)

	l, err := db.StartTokenLease(ctx, a.ID, LeaseRequest{RunName: "soak", Uses: []string{"p"}, Holder: "h:1", TTL: time.Minute})
	require.NoError(t, err)
	owned, err := db.LeaseOwnedBy(ctx, l.ID, a.ID)
	require.NoError(t, err)
	require.True(t, owned)
	owned, err = db.LeaseOwnedBy(ctx, l.ID, b.ID)
	require.NoError(t, err)
	require.False(t, owned)

	direct, err := db.StartLease(ctx, LeaseRequest{RunName: "soak", Uses: []string{"p"}, Holder: "h:2", TTL: time.Minute})
	require.NoError(t, err)
	owned, err = db.LeaseOwnedBy(ctx, direct.ID, a.ID)
	require.NoError(t, err)
	require.False(t, owned, "a lease taken in the database belongs to no token")

	_, err = db.LeaseOwnedBy(ctx, "not-a-uuid", a.ID)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = db.LeaseOwnedBy(ctx, "0190a1b2-0000-7000-8000-000000000000", a.ID)
	require.ErrorIs(t, err, ErrNotFound)
}
