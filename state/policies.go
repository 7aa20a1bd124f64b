package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PolicyState is what swarmkey knows of a policy's secret.
type PolicyState struct {
	Policy         string
	Strategy       string
	Store          string
	SecretID       string
	CurrentVersion string
	CurrentToken   string
	Principal      string
	RotatedAt      *time.Time
	LastRotation   string
	LastOutcome    string
	LastError      string
}

// RecordPromoted records that the version of token became current.
func (db *DB) RecordPromoted(ctx context.Context, s PolicyState) error {
	now := db.now()
	_, err := db.pool.Exec(ctx, `
		INSERT INTO policy_state (policy, strategy, store, secret_id, current_version, current_token, principal,
			rotated_at, last_rotation, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $6, $8)
		ON CONFLICT (policy) DO UPDATE SET strategy = $2, store = $3, secret_id = $4, current_version = $5,
			current_token = $6, principal = $7, rotated_at = $8, last_rotation = $6, updated_at = $8`,
		s.Policy, s.Strategy, s.Store, s.SecretID, s.CurrentVersion, s.CurrentToken, s.Principal, now)
	if err != nil {
		return fmt.Errorf("record promote of policy %q: %w", s.Policy, err)
	}
	return nil
}

// RecordRefusal records that a rotation of the policy was refused before it
// changed anything (a pending version swarmkey did not write, a secret its
// store rotates itself): the policy's last outcome becomes "refused" with
// reason, which `status` shows, and the audit entry is appended, in one
// statement. No rotation row is written: nothing was rotated. reason must
// hold no value.
func (db *DB) RecordRefusal(ctx context.Context, s PolicyState, reason string, refused AuditEntry) error {
	detail, now, err := db.auditRow(ctx, refused)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `
		WITH audited AS (
			INSERT INTO audit_log (at, actor, policy, action, detail) VALUES ($6, $7, $1, $8, $9)
		)
		INSERT INTO policy_state (policy, strategy, store, secret_id, last_outcome, last_error, updated_at)
		VALUES ($1, $2, $3, $4, 'refused', $5, $6)
		ON CONFLICT (policy) DO UPDATE SET last_outcome = 'refused', last_error = $5, updated_at = $6`,
		s.Policy, s.Strategy, s.Store, s.SecretID, reason, now, refused.Actor, refused.Action, detail)
	if err != nil {
		return fmt.Errorf("record refusal of policy %q: %w", s.Policy, err)
	}
	return nil
}

// RecordResolved records an operator's resolution of a pending version
// (`swarmkey resolve`) with its audit entry, in one statement: the policy's
// last outcome becomes "resolved", and when promoted, s.CurrentVersion
// becomes its current version (s.CurrentToken is "" for a version another
// tool wrote).
func (db *DB) RecordResolved(ctx context.Context, s PolicyState, promoted bool, resolved AuditEntry) error {
	detail, now, err := db.auditRow(ctx, resolved)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `
		WITH audited AS (
			INSERT INTO audit_log (at, actor, policy, rotation, action, detail)
			VALUES ($9, $10, $1, nullif($11, '')::uuid, $12, $13)
		)
		INSERT INTO policy_state (policy, strategy, store, secret_id, current_version, current_token, principal,
			rotated_at, last_outcome, updated_at)
		VALUES ($1, $2, $3, $4, CASE WHEN $8 THEN $5 END, CASE WHEN $8 THEN nullif($6, '')::uuid END,
			CASE WHEN $8 THEN nullif($7, '') END, CASE WHEN $8 THEN $9::timestamptz END, 'resolved', $9)
		ON CONFLICT (policy) DO UPDATE SET last_outcome = 'resolved', last_error = NULL, updated_at = $9,
			current_version = CASE WHEN $8 THEN $5 ELSE policy_state.current_version END,
			current_token = CASE WHEN $8 THEN nullif($6, '')::uuid ELSE policy_state.current_token END,
			principal = CASE WHEN $8 THEN nullif($7, '') ELSE policy_state.principal END,
			rotated_at = CASE WHEN $8 THEN $9::timestamptz ELSE policy_state.rotated_at END`,
		s.Policy, s.Strategy, s.Store, s.SecretID, s.CurrentVersion, s.CurrentToken, s.Principal, promoted,
		now, resolved.Actor, resolved.Rotation, resolved.Action, detail)
	if err != nil {
		return fmt.Errorf("record resolution of policy %q: %w", s.Policy, err)
	}
	return nil
}

// policyStateColumns are the columns scanPolicyState reads, in order.
const policyStateColumns = `policy, strategy, store, secret_id, coalesce(current_version, ''), coalesce(current_token::text, ''),
	coalesce(principal, ''), rotated_at, coalesce(last_rotation::text, ''), coalesce(last_outcome, ''),
	coalesce(last_error, '')`

func scanPolicyState(row pgx.Row) (PolicyState, error) {
	var s PolicyState
	err := row.Scan(&s.Policy, &s.Strategy, &s.Store, &s.SecretID, &s.CurrentVersion, &s.CurrentToken,
		&s.Principal, &s.RotatedAt, &s.LastRotation, &s.LastOutcome, &s.LastError)
	return s, err
}

// PolicyStates returns the state of every policy that has one, by name.
func (db *DB) PolicyStates(ctx context.Context) (map[string]PolicyState, error) {
	return db.readPolicyStates(ctx, `SELECT `+policyStateColumns+` FROM policy_state`)
}

// PolicyStatesOf returns the state of the named policies that have one, by
// name, reading their rows only; nil names read every row (PolicyStates).
func (db *DB) PolicyStatesOf(ctx context.Context, names []string) (map[string]PolicyState, error) {
	if names == nil {
		return db.PolicyStates(ctx)
	}
	return db.readPolicyStates(ctx, `SELECT `+policyStateColumns+` FROM policy_state WHERE policy = ANY($1)`, names)
}

func (db *DB) readPolicyStates(ctx context.Context, query string, args ...any) (map[string]PolicyState, error) {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read policy state: %w", err)
	}
	defer rows.Close()
	out := map[string]PolicyState{}
	for rows.Next() {
		s, err := scanPolicyState(rows)
		if err != nil {
			return nil, fmt.Errorf("read policy state: %w", err)
		}
		out[s.Policy] = s
	}
	return out, rows.Err()
}

// PolicyHealth is what a metrics scrape reads of a policy's state: when
// its credential was last rotated (nil before the first rotation) and
// whether its last rotation ended needs_attention.
type PolicyHealth struct {
	Policy         string
	RotatedAt      *time.Time
	NeedsAttention bool
}

// EachPolicyHealth calls fn with the health of every policy that has a
// state row, in no order. It reads three columns and keeps no row, so that
// a scrape of 100,000 policies neither copies every state nor holds them
// all at once. fn must not call the database.
func (db *DB) EachPolicyHealth(ctx context.Context, fn func(PolicyHealth)) error {
	rows, err := db.pool.Query(ctx, `SELECT policy, rotated_at, coalesce(last_outcome = $1, false) FROM policy_state`,
		string(OutcomeNeedsAttention))
	if err != nil {
		return fmt.Errorf("read policy health: %w", err)
	}
	defer rows.Close()
	var h PolicyHealth
	for rows.Next() {
		if err := rows.Scan(&h.Policy, &h.RotatedAt, &h.NeedsAttention); err != nil {
			return fmt.Errorf("read policy health: %w", err)
		}
		fn(h)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read policy health: %w", err)
	}
	return nil
}

// PolicyState returns one policy's state, or ErrNotFound. It reads that
// policy's row only: the daemon asks for one policy when a fire's window
// closed, and after an outage many do at once.
func (db *DB) PolicyState(ctx context.Context, policy string) (PolicyState, error) {
	s, err := scanPolicyState(db.pool.QueryRow(ctx, `SELECT `+policyStateColumns+` FROM policy_state WHERE policy = $1`, policy))
	if errors.Is(err, pgx.ErrNoRows) {
		return PolicyState{}, ErrNotFound
	}
	if err != nil {
		return PolicyState{}, fmt.Errorf("read the state of policy %q: %w", policy, err)
	}
	return s, nil
}
