package state

import (
	"context"
	"fmt"
	"time"
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

// PolicyStates returns the state of every policy that has one, by name.
func (db *DB) PolicyStates(ctx context.Context) (map[string]PolicyState, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT policy, strategy, store, secret_id, coalesce(current_version, ''), coalesce(current_token::text, ''),
			coalesce(principal, ''), rotated_at, coalesce(last_rotation::text, ''), coalesce(last_outcome, ''),
			coalesce(last_error, '')
		FROM policy_state`)
	if err != nil {
		return nil, fmt.Errorf("read policy state: %w", err)
	}
	defer rows.Close()
	out := map[string]PolicyState{}
	for rows.Next() {
		var s PolicyState
		if err := rows.Scan(&s.Policy, &s.Strategy, &s.Store, &s.SecretID, &s.CurrentVersion, &s.CurrentToken,
			&s.Principal, &s.RotatedAt, &s.LastRotation, &s.LastOutcome, &s.LastError); err != nil {
			return nil, fmt.Errorf("read policy state: %w", err)
		}
		out[s.Policy] = s
	}
	return out, rows.Err()
}

// PolicyState returns one policy's state, or ErrNotFound.
func (db *DB) PolicyState(ctx context.Context, policy string) (PolicyState, error) {
	all, err := db.PolicyStates(ctx)
	if err != nil {
		return PolicyState{}, err
	}
	s, ok := all[policy]
	if !ok {
		return PolicyState{}, ErrNotFound
	}
	return s, nil
}
