package state

import (
	"context"
	"fmt"
	"time"
)

// PlanState is what the planner keeps of one policy.
type PlanState struct {
	Policy       string
	RotatedAt    *time.Time
	PlannedFire  *time.Time
	NextCheck    *time.Time
	DeferredFire *time.Time
}

// EnsurePolicies creates state rows for policies that have none, so the
// planner sees every configured policy. One statement for any number.
func (db *DB) EnsurePolicies(ctx context.Context, states []PolicyState) error {
	if len(states) == 0 {
		return nil
	}
	names := make([]string, len(states))
	strategies := make([]string, len(states))
	storeNames := make([]string, len(states))
	secretIDs := make([]string, len(states))
	for i, s := range states {
		names[i], strategies[i], storeNames[i], secretIDs[i] = s.Policy, s.Strategy, s.Store, s.SecretID
	}
	_, err := db.pool.Exec(ctx, `
		INSERT INTO policy_state (policy, strategy, store, secret_id, updated_at)
		SELECT * , $5::timestamptz FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
		ON CONFLICT (policy) DO NOTHING`, names, strategies, storeNames, secretIDs, db.now())
	if err != nil {
		return fmt.Errorf("record policies: %w", err)
	}
	return nil
}

// DuePlans returns the plan state of policies whose next check is at or
// before until (or was never set), at most limit of them.
func (db *DB) DuePlans(ctx context.Context, until time.Time, limit int) ([]PlanState, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT policy, rotated_at, planned_fire, next_check, deferred_fire FROM policy_state
		WHERE next_check IS NULL OR next_check <= $1
		ORDER BY next_check NULLS FIRST LIMIT $2`, until, limit)
	if err != nil {
		return nil, fmt.Errorf("read due policies: %w", err)
	}
	defer rows.Close()
	var out []PlanState
	for rows.Next() {
		var s PlanState
		if err := rows.Scan(&s.Policy, &s.RotatedAt, &s.PlannedFire, &s.NextCheck, &s.DeferredFire); err != nil {
			return nil, fmt.Errorf("read due policies: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// PlanStates returns the plan state of every policy, by name.
func (db *DB) PlanStates(ctx context.Context) (map[string]PlanState, error) {
	rows, err := db.pool.Query(ctx, `SELECT policy, rotated_at, planned_fire, next_check, deferred_fire FROM policy_state`)
	if err != nil {
		return nil, fmt.Errorf("read plan state: %w", err)
	}
	defer rows.Close()
	out := map[string]PlanState{}
	for rows.Next() {
		var s PlanState
		if err := rows.Scan(&s.Policy, &s.RotatedAt, &s.PlannedFire, &s.NextCheck, &s.DeferredFire); err != nil {
			return nil, fmt.Errorf("read plan state: %w", err)
		}
		out[s.Policy] = s
	}
	return out, rows.Err()
}

// PlanUpdate is the planner's verdict on one policy.
type PlanUpdate struct {
	Policy string
	// PlannedFire, when set, is the fire now handled (a job was inserted).
	PlannedFire *time.Time
	// DeferredFire, when set, is a fire whose deferral was audited.
	DeferredFire *time.Time
	NextCheck    time.Time
}

// UpdatePlans records the planner's verdicts in one statement. Planned and
// deferred fires only move forward (greatest ignores a NULL): a planner
// that was slow, or outlived its planning lock, never hands a fire back.
func (db *DB) UpdatePlans(ctx context.Context, updates []PlanUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	names := make([]string, len(updates))
	planned := make([]*time.Time, len(updates))
	deferred := make([]*time.Time, len(updates))
	next := make([]time.Time, len(updates))
	for i, u := range updates {
		names[i], planned[i], deferred[i], next[i] = u.Policy, u.PlannedFire, u.DeferredFire, u.NextCheck
	}
	_, err := db.pool.Exec(ctx, `
		UPDATE policy_state p SET
			planned_fire = greatest(u.planned, p.planned_fire),
			deferred_fire = greatest(u.deferred, p.deferred_fire),
			next_check = u.next
		FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[]) AS u(policy, planned, deferred, next)
		WHERE p.policy = u.policy`, names, planned, deferred, next)
	if err != nil {
		return fmt.Errorf("record plans: %w", err)
	}
	return nil
}
