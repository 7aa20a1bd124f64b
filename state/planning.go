package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
	// Two reads the next_check index serves (IS NULL, and <= in order),
	// rather than one OR that sorts the whole table every tick.
	rows, err := db.pool.Query(ctx, `
		SELECT * FROM (
			(SELECT policy, rotated_at, planned_fire, next_check, deferred_fire FROM policy_state
				WHERE next_check IS NULL LIMIT $2)
			UNION ALL
			(SELECT policy, rotated_at, planned_fire, next_check, deferred_fire FROM policy_state
				WHERE next_check <= $1 ORDER BY next_check LIMIT $2)
		) AS due ORDER BY next_check NULLS FIRST LIMIT $2`, until, limit)
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
	return db.readPlanStates(ctx, `SELECT policy, rotated_at, planned_fire, next_check, deferred_fire FROM policy_state`)
}

// PlanStatesOf returns the plan state of the named policies, by name,
// reading their rows only; nil names read every row (PlanStates).
func (db *DB) PlanStatesOf(ctx context.Context, names []string) (map[string]PlanState, error) {
	if names == nil {
		return db.PlanStates(ctx)
	}
	return db.readPlanStates(ctx, `SELECT policy, rotated_at, planned_fire, next_check, deferred_fire FROM policy_state
		WHERE policy = ANY($1)`, names)
}

func (db *DB) readPlanStates(ctx context.Context, query string, args ...any) (map[string]PlanState, error) {
	rows, err := db.pool.Query(ctx, query, args...)
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

// MarkDue brings the next check of the named policies forward to at (a
// later one moves; an earlier or unset one stays), so the next planning
// tick plans them. Names without a row are ignored.
func (db *DB) MarkDue(ctx context.Context, policies []string, at time.Time) error {
	if len(policies) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `
		UPDATE policy_state SET next_check = $2
		WHERE policy = ANY($1) AND next_check > $2`, policies, at)
	if err != nil {
		return fmt.Errorf("mark policies due: %w", err)
	}
	return nil
}

// CalendarChange is a run or a lease that changed what it blocks: added,
// cancelled, taken or ended. Key names the change ("run:12:cancelled"),
// the same on every read; Uses are the run's or lease's uses.
type CalendarChange struct {
	Key  string
	Uses []string
}

// CalendarChanges returns the runs added or cancelled and the leases taken
// or ended at or after since, and the database's clock now (the since of
// the next read, less a margin for clocks that differ and transactions
// that commit late). A heartbeat is no change: it only moves a lease's end
// later, and a plan that a lease pushed back looks again at that end.
func (db *DB) CalendarChanges(ctx context.Context, since time.Time) ([]CalendarChange, time.Time, error) {
	var out []CalendarChange
	var now time.Time
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT 'run:' || id || ':created', uses FROM runs WHERE created_at >= $1
			UNION ALL
			SELECT 'run:' || id || ':cancelled', uses FROM runs WHERE cancelled_at >= $1
			UNION ALL
			SELECT 'lease:' || id || ':started', uses FROM leases WHERE started_at >= $1
			UNION ALL
			SELECT 'lease:' || id || ':ended', uses FROM leases WHERE ended_at >= $1`, since)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (CalendarChange, error) {
			var c CalendarChange
			err := row.Scan(&c.Key, &c.Uses)
			return c, err
		})
		return err
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read the run calendar's changes: %w", err)
	}
	return out, now.UTC(), nil
}
