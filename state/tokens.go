package state

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/swarmkey/swarmkey/secret"
)

// API tokens: bearer tokens of the HTTP API, with a scope and, for runners,
// the policies they are granted. The table holds only the SHA-256 hash of a
// token; the token itself exists once, in AddToken's result.

// TokenScope says what a token may do.
type TokenScope string

const (
	// ScopeAdmin may call the admin endpoints (/metrics); it reads no
	// credential.
	ScopeAdmin TokenScope = "admin"
	// ScopeRunner may take, heartbeat and end leases on, and read the
	// current credential of, the policies it is granted, and nothing else.
	ScopeRunner TokenScope = "runner"
)

// TokenPrefix starts every token, so that a leaked one is recognisable by
// secret scanners and by eye.
const TokenPrefix = "swk_"

var (
	// ErrTokenUnknown: no token (active, expired or revoked) has this hash.
	ErrTokenUnknown = errors.New("unknown token")
	// ErrTokenExpired: the token's expires_at has passed.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenRevoked: the token was revoked.
	ErrTokenRevoked = errors.New("token revoked")
	// ErrTokenExists: an active (not revoked) token already has the name.
	ErrTokenExists = errors.New("an active token already has this name")
)

// Token is one row of the tokens table; it never holds the token itself.
type Token struct {
	ID     int64
	Name   string
	Scope  TokenScope
	Grants []string
	// CreatedBy says who added the token.
	CreatedBy string
	CreatedAt time.Time
	// ExpiresAt is nil for a token that does not expire.
	ExpiresAt *time.Time
	RevokedAt *time.Time
	RevokedBy string
}

// TokenRequest describes a token to add.
type TokenRequest struct {
	Name  string
	Scope TokenScope
	// Grants are policy names or tag:NAME; required for a runner, refused
	// for an admin.
	Grants []string
	// TTL is how long the token is valid; 0 means it does not expire.
	TTL       time.Duration
	CreatedBy string
}

const tokenColumns = `id, name, scope, grants, created_by, created_at, expires_at, revoked_at, coalesce(revoked_by, '')`

func scanToken(row pgx.Row) (Token, error) {
	var t Token
	err := row.Scan(&t.ID, &t.Name, &t.Scope, &t.Grants, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt, &t.RevokedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, err
	}
	t.toUTC()
	return t, nil
}

func (t *Token) toUTC() {
	t.CreatedAt = t.CreatedAt.UTC()
	for _, p := range []**time.Time{&t.ExpiresAt, &t.RevokedAt} {
		if *p != nil {
			u := (*p).UTC()
			*p = &u
		}
	}
}

// HashToken returns the SHA-256 of a token, as the tokens table stores it.
// A token has 256 random bits, so a fast unsalted hash is enough: there is
// nothing to guess from a dictionary.
func HashToken(token secret.Secret) []byte {
	sum := sha256.Sum256(token.Reveal())
	return sum[:]
}

// AddToken creates a token and returns its row and the token itself: the
// only time the token exists outside its holder's hands. It refuses (with
// an *InvalidRunError naming the field: name, scope, grant, ttl,
// created_by) a bad name, an unknown scope, a runner without grants, an
// admin with grants and a negative TTL; it returns ErrTokenExists when an
// active token has the name. Nothing is written on error.
func (db *DB) AddToken(ctx context.Context, req TokenRequest) (Token, secret.Secret, error) {
	if err := checkName("name", req.Name); err != nil {
		return Token{}, secret.Secret{}, err
	}
	if strings.TrimSpace(req.CreatedBy) == "" {
		return Token{}, secret.Secret{}, invalid("created_by", req.CreatedBy, "missing: say who adds the token")
	}
	grants := []string{}
	for _, g := range req.Grants {
		if err := checkName("grant", g); err != nil {
			return Token{}, secret.Secret{}, err
		}
		if g == UsesTagPrefix {
			return Token{}, secret.Secret{}, invalid("grant", g, "a tag needs a name: tag:NAME")
		}
		if !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
	}
	switch req.Scope {
	case ScopeRunner:
		if len(grants) == 0 {
			return Token{}, secret.Secret{}, invalid("grant", "", "a runner token needs at least one grant: the policies (or tag:NAME) it may read")
		}
	case ScopeAdmin:
		if len(grants) > 0 {
			return Token{}, secret.Secret{}, invalid("grant", strings.Join(grants, ","),
				"an admin token reads no credential, so it takes no grants: use --scope runner to read policies")
		}
	default:
		return Token{}, secret.Secret{}, invalid("scope", string(req.Scope), "use admin or runner")
	}
	if req.TTL < 0 {
		return Token{}, secret.Secret{}, invalid("ttl", req.TTL.String(), "must be positive (or 0 for a token that does not expire)")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, secret.Secret{}, fmt.Errorf("add token %q: %w", req.Name, err)
	}
	token := secret.FromString(TokenPrefix + base64.RawURLEncoding.EncodeToString(raw))
	now := db.now()
	var expires *time.Time
	if req.TTL > 0 {
		e := now.Add(req.TTL)
		expires = &e
	}
	t, err := scanToken(db.pool.QueryRow(ctx, `
		INSERT INTO tokens (name, scope, grants, token_hash, created_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		RETURNING `+tokenColumns,
		req.Name, req.Scope, grants, HashToken(token), req.CreatedBy, now, expires))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "tokens_active_name" {
		return Token{}, secret.Secret{}, fmt.Errorf("token %q: %w", req.Name, ErrTokenExists)
	}
	if err != nil {
		return Token{}, secret.Secret{}, fmt.Errorf("add token %q: %w", req.Name, err)
	}
	return t, token, nil
}

// ListTokens returns the active tokens (expired ones included: they are
// still rows an operator may want to revoke or replace), and the revoked
// ones too when includeRevoked is set, oldest first.
func (db *DB) ListTokens(ctx context.Context, includeRevoked bool) ([]Token, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE $1 OR revoked_at IS NULL ORDER BY id`, includeRevoked)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	tokens, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Token, error) { return scanToken(row) })
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return tokens, nil
}

// RevokeToken revokes the active token called name on behalf of by, and
// returns it. From then on the token is refused with ErrTokenRevoked; the
// row stays for the record and the name may be reused. It returns
// ErrNotFound when no active token has the name.
func (db *DB) RevokeToken(ctx context.Context, name, by string) (Token, error) {
	if strings.TrimSpace(by) == "" {
		return Token{}, invalid("created_by", by, "missing: say who revokes the token")
	}
	t, err := scanToken(db.pool.QueryRow(ctx, `
		UPDATE tokens SET revoked_at = $2, revoked_by = $3
		WHERE name = $1 AND revoked_at IS NULL
		RETURNING `+tokenColumns, name, db.now(), by))
	if err != nil {
		return Token{}, fmt.Errorf("revoke token %q: %w", name, err)
	}
	return t, nil
}

// AuthenticateToken returns the row of the token presented. It returns
// ErrTokenUnknown when no row has its hash, and ErrTokenRevoked or
// ErrTokenExpired (revoked wins) together with the row, so the caller can
// name the token and say what to do.
//
// The row is found by its hash, then the hashes are compared again in
// constant time. The index lookup's timing can only tell an attacker about
// the hash of their guess, which says nothing about a real token; the second
// comparison keeps the check itself free of early exits all the same.
func (db *DB) AuthenticateToken(ctx context.Context, presented secret.Secret) (Token, error) {
	if !strings.HasPrefix(presented.RevealString(), TokenPrefix) {
		return Token{}, ErrTokenUnknown
	}
	want := HashToken(presented)
	var stored []byte
	var t Token
	err := db.pool.QueryRow(ctx, `SELECT token_hash, `+tokenColumns+` FROM tokens WHERE token_hash = $1`, want).Scan(
		&stored, &t.ID, &t.Name, &t.Scope, &t.Grants, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt, &t.RevokedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, ErrTokenUnknown
	}
	if err != nil {
		return Token{}, fmt.Errorf("authenticate token: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, want) != 1 {
		return Token{}, ErrTokenUnknown
	}
	t.toUTC()
	switch {
	case t.RevokedAt != nil:
		return t, ErrTokenRevoked
	case t.ExpiresAt != nil && !db.now().Before(*t.ExpiresAt):
		return t, ErrTokenExpired
	}
	return t, nil
}

// StartTokenLease takes a lease as StartLease does, then records that the
// token tokenID owns it, so that only that token can heartbeat or end it
// over the API (see LeaseOwnedBy). If recording the owner fails, the lease
// is ended at once and the error returned.
func (db *DB) StartTokenLease(ctx context.Context, tokenID int64, req LeaseRequest) (Lease, error) {
	l, err := db.StartLease(ctx, req)
	if err != nil {
		return Lease{}, err
	}
	if _, err := db.pool.Exec(ctx, `UPDATE leases SET token_id = $2 WHERE id = $1`, l.ID, tokenID); err != nil {
		// Without an owner nobody could heartbeat it over the API: end it now
		// rather than let it block rotations until its TTL.
		_, _ = db.EndLease(context.WithoutCancel(ctx), l.ID)
		return Lease{}, fmt.Errorf("start lease for run %q: %w", req.RunName, err)
	}
	return l, nil
}

// LeaseOwnedBy reports whether the lease id was taken through the token
// tokenID. An unknown or malformed id is ErrNotFound.
func (db *DB) LeaseOwnedBy(ctx context.Context, id string, tokenID int64) (bool, error) {
	if _, err := uuid.Parse(id); err != nil {
		return false, fmt.Errorf("lease %q: %w", id, ErrNotFound)
	}
	var owner *int64
	err := db.pool.QueryRow(ctx, `SELECT token_id FROM leases WHERE id = $1`, id).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("lease %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", id, err)
	}
	return owner != nil && *owner == tokenID, nil
}
