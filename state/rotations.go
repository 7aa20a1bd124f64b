package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Outcome of a rotation.
type Outcome string

const (
	OutcomeRunning        Outcome = "running"
	OutcomeSucceeded      Outcome = "succeeded"
	OutcomeFailed         Outcome = "failed"
	OutcomeNeedsAttention Outcome = "needs_attention"
)

// StepTiming records one completed step.
type StepTiming struct {
	Step     string        `json:"step"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
}

// Rotation is one row of the rotations table.
type Rotation struct {
	Token           string
	Policy          string
	Strategy        string
	Store           string
	SecretID        string
	Step            string // last completed step, "" before create completes
	Outcome         Outcome
	Principal       string
	ExpectedCurrent string
	Error           string
	RolledBack      bool
	Forced          bool
	Actor           string
	Resumes         int
	Steps           []StepTiming
	RetireAfter     *time.Time
	RetiredAt       *time.Time
	StartedAt       time.Time
	UpdatedAt       time.Time
	FinishedAt      *time.Time
	// RequestKey names what asked for the rotation ("fire:<policy>:<time>",
	// "request:<uuid>"): a key succeeds at most once.
	RequestKey string
	// PendingVersion is the version id the rotation's PutPending produced,
	// "" until the store answered (see RecordPendingVersion).
	PendingVersion string
}

const rotationColumns = `token::text, policy, strategy, store, secret_id, step, outcome, coalesce(principal, ''),
	expected_current, coalesce(error, ''), rolled_back, forced, actor, resumes, steps, retire_after, retired_at,
	started_at, updated_at, finished_at, coalesce(request_key, ''), coalesce(pending_version, '')`

func scanRotation(row pgx.Row) (Rotation, error) {
	var r Rotation
	var steps []byte
	err := row.Scan(&r.Token, &r.Policy, &r.Strategy, &r.Store, &r.SecretID, &r.Step, &r.Outcome, &r.Principal,
		&r.ExpectedCurrent, &r.Error, &r.RolledBack, &r.Forced, &r.Actor, &r.Resumes, &steps, &r.RetireAfter, &r.RetiredAt,
		&r.StartedAt, &r.UpdatedAt, &r.FinishedAt, &r.RequestKey, &r.PendingVersion)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(steps, &r.Steps); err != nil {
		return r, fmt.Errorf("rotation %s: steps column: %w", r.Token, err)
	}
	return r, nil
}

// InsertRotation records a new rotation before anything is touched, in one
// statement with its audit entry and, for a policy seen for the first time,
// its state row (one round trip: a rotation makes many).
func (db *DB) InsertRotation(ctx context.Context, r Rotation, started AuditEntry) error {
	detail, now, err := db.auditRow(ctx, started)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `
		WITH ensured AS (
			INSERT INTO policy_state (policy, strategy, store, secret_id, updated_at) VALUES ($2, $3, $4, $5, $10)
			ON CONFLICT (policy) DO NOTHING
		), audited AS (
			INSERT INTO audit_log (at, actor, policy, rotation, action, detail) VALUES ($10, $8, $2, $1::uuid, $11, $12)
		)
		INSERT INTO rotations (token, policy, strategy, store, secret_id, expected_current, forced, actor, request_key, started_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nullif($9, ''), $10, $10)`,
		r.Token, r.Policy, r.Strategy, r.Store, r.SecretID, r.ExpectedCurrent, r.Forced, r.Actor, r.RequestKey, now,
		started.Action, detail)
	if err != nil {
		return fmt.Errorf("record rotation of policy %q: %w", r.Policy, err)
	}
	return nil
}

// CompleteStep records that step completed, with its timing and, once
// known, the principal the new credential logs in as.
func (db *DB) CompleteStep(ctx context.Context, token, step, principal string, timing StepTiming) error {
	t, err := json.Marshal([]StepTiming{timing})
	if err != nil {
		return err
	}
	tag, err := db.pool.Exec(ctx, `
		UPDATE rotations SET step = $2, principal = coalesce(nullif($3, ''), principal),
			steps = steps || $4::jsonb, updated_at = $5
		WHERE token = $1 AND outcome = 'running'`,
		token, step, principal, t, db.now())
	if err != nil {
		return fmt.Errorf("record step %s of rotation %s: %w", step, token, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("record step %s of rotation %s: the rotation is no longer running", step, token)
	}
	return nil
}

// CompletePromote records the promote step of rotation token (as
// CompleteStep does) and the policy's new current version (as
// RecordPromoted does) in one statement: both or neither, in one round
// trip. The policy state changes only while the rotation is running.
func (db *DB) CompletePromote(ctx context.Context, token, principal string, timing StepTiming, s PolicyState) error {
	t, err := json.Marshal([]StepTiming{timing})
	if err != nil {
		return err
	}
	now := db.now()
	tag, err := db.pool.Exec(ctx, `
		WITH stepped AS (
			UPDATE rotations SET step = $2, principal = coalesce(nullif($3, ''), principal),
				steps = steps || $4::jsonb, updated_at = $5
			WHERE token = $1 AND outcome = 'running'
			RETURNING token
		)
		INSERT INTO policy_state (policy, strategy, store, secret_id, current_version, current_token, principal,
			rotated_at, last_rotation, updated_at)
		SELECT $6, $7, $8, $9, $10, $11, $12, $5, $11, $5 FROM stepped
		ON CONFLICT (policy) DO UPDATE SET strategy = $7, store = $8, secret_id = $9, current_version = $10,
			current_token = $11, principal = $12, rotated_at = $5, last_rotation = $11, updated_at = $5`,
		token, timing.Step, principal, t, now,
		s.Policy, s.Strategy, s.Store, s.SecretID, s.CurrentVersion, s.CurrentToken, s.Principal)
	if err != nil {
		return fmt.Errorf("record step %s of rotation %s and the promote of policy %q: %w", timing.Step, token, s.Policy, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("record step %s of rotation %s: the rotation is no longer running", timing.Step, token)
	}
	return nil
}

// RecordPendingVersion records the version id that the rotation's
// PutPending produced: with the token, it is what makes the version
// swarmkey's own. A PutPending repeated after a crash produces the same
// version, so recording it again changes nothing.
func (db *DB) RecordPendingVersion(ctx context.Context, token, versionID string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE rotations SET pending_version = $2, updated_at = $3 WHERE token = $1`,
		token, versionID, db.now())
	if err != nil {
		return fmt.Errorf("record pending version %s of rotation %s: %w", versionID, token, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("record pending version %s of rotation %s: %w", versionID, token, ErrNotFound)
	}
	return nil
}

// MarkResumed counts a resumption of an unfinished rotation.
func (db *DB) MarkResumed(ctx context.Context, token string) error {
	_, err := db.pool.Exec(ctx, `UPDATE rotations SET resumes = resumes + 1, updated_at = $2 WHERE token = $1`, token, db.now())
	return err
}

// FinishRotation ends a rotation with outcome, records it as the policy's
// last outcome and appends its audit entry, in one statement. errText must
// hold no value. retireAfter is when its finish work is due; retired says it
// already ran.
func (db *DB) FinishRotation(ctx context.Context, token string, outcome Outcome, errText string, rolledBack bool,
	retireAfter *time.Time, retired bool, finished AuditEntry) error {
	detail, now, err := db.auditRow(ctx, finished)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `
		WITH finished AS (
			UPDATE rotations SET outcome = $2, error = nullif($3, ''), rolled_back = $4, retire_after = $5,
				retired_at = CASE WHEN $6 THEN $7::timestamptz END, finished_at = $7, updated_at = $7
			WHERE token = $1
			RETURNING policy
		), audited AS (
			INSERT INTO audit_log (at, actor, policy, rotation, action, detail)
			SELECT $7, $8, policy, $1::uuid, $9, $10 FROM finished
		)
		UPDATE policy_state SET last_rotation = $1, last_outcome = $2, last_error = nullif($3, ''), updated_at = $7
		FROM finished WHERE policy_state.policy = finished.policy`,
		token, string(outcome), errText, rolledBack, retireAfter, retired, now, finished.Actor, finished.Action, detail)
	if err != nil {
		return fmt.Errorf("record outcome of rotation %s: %w", token, err)
	}
	return nil
}

// SucceedRotation records the finish step of a running rotation (as
// CompleteStep does) and its success (as FinishRotation does with
// OutcomeSucceeded) in one statement: the last step and the outcome cost
// one round trip. It fails when the rotation is no longer running.
func (db *DB) SucceedRotation(ctx context.Context, token string, finish StepTiming, retireAfter *time.Time, retired bool,
	succeeded AuditEntry) error {
	detail, now, err := db.auditRow(ctx, succeeded)
	if err != nil {
		return err
	}
	timing, err := json.Marshal([]StepTiming{finish})
	if err != nil {
		return err
	}
	var n int
	err = db.pool.QueryRow(ctx, `
		WITH finished AS (
			UPDATE rotations SET step = $2, steps = steps || $3::jsonb, outcome = 'succeeded', error = NULL,
				retire_after = $4, retired_at = CASE WHEN $5 THEN $6::timestamptz END, finished_at = $6, updated_at = $6
			WHERE token = $1 AND outcome = 'running'
			RETURNING policy
		), audited AS (
			INSERT INTO audit_log (at, actor, policy, rotation, action, detail)
			SELECT $6, $7, policy, $1::uuid, $8, $9 FROM finished
		), stated AS (
			UPDATE policy_state SET last_rotation = $1, last_outcome = 'succeeded', last_error = NULL, updated_at = $6
			FROM finished WHERE policy_state.policy = finished.policy
		)
		SELECT count(*) FROM finished`,
		token, finish.Step, timing, retireAfter, retired, now, succeeded.Actor, succeeded.Action, detail).Scan(&n)
	if err != nil {
		return fmt.Errorf("record step %s and the outcome of rotation %s: %w", finish.Step, token, err)
	}
	if n != 1 {
		return fmt.Errorf("record step %s of rotation %s: the rotation is no longer running", finish.Step, token)
	}
	return nil
}

// MarkRetired records that the finish step retired what fell off.
func (db *DB) MarkRetired(ctx context.Context, token string) error {
	_, err := db.pool.Exec(ctx, `UPDATE rotations SET retired_at = $2, updated_at = $2 WHERE token = $1`, token, db.now())
	return err
}

// Rotation returns one rotation by token.
func (db *DB) Rotation(ctx context.Context, token string) (Rotation, error) {
	return scanRotation(db.pool.QueryRow(ctx, `SELECT `+rotationColumns+` FROM rotations WHERE token = $1`, token))
}

// RunningRotation returns the unfinished rotation of policy, or ErrNotFound.
func (db *DB) RunningRotation(ctx context.Context, policy string) (Rotation, error) {
	return scanRotation(db.pool.QueryRow(ctx,
		`SELECT `+rotationColumns+` FROM rotations WHERE policy = $1 AND outcome = 'running'`, policy))
}

// OpenRotations are what a new rotation of a policy must finish first: the
// one left running (by a crashed process), and the succeeded ones whose
// finish is due and has not run.
type OpenRotations struct {
	// Running is the running rotation; nil when there is none.
	Running *Rotation
	// RetireDue are the succeeded rotations whose finish is due and has
	// not run, oldest first.
	RetireDue []Rotation
}

// openRotationsQuery is OpenRotationsOf's: each arm of its OR has an index
// led by the policy (rotations_one_running_per_policy and, from migration
// 00010, rotations_retire_due_by_policy), so no plan reads other policies'
// rows, whatever the statistics say.
const openRotationsQuery = `SELECT ` + rotationColumns + ` FROM rotations
	WHERE policy = $1 AND (outcome = 'running'
		OR (outcome = 'succeeded' AND retired_at IS NULL AND retire_after <= $2))
	ORDER BY started_at`

// OpenRotationsOf reads, in one query, the policy's running rotation and
// its rotations due to finish at now, for the start of every rotation.
func (db *DB) OpenRotationsOf(ctx context.Context, policy string, now time.Time) (OpenRotations, error) {
	rows, err := db.queryRotations(ctx, openRotationsQuery, policy, now)
	if err != nil {
		return OpenRotations{}, err
	}
	var open OpenRotations
	for _, r := range rows {
		if r.Outcome == OutcomeRunning {
			running := r
			open.Running = &running
			continue
		}
		open.RetireDue = append(open.RetireDue, r)
	}
	return open, nil
}

// SettledByKey returns the rotation that settled a request key, or
// ErrNotFound: the succeeded one, or one whose promote landed and that
// ended needs_attention (its finish failed, or another writer changed the
// secret right after the promote). Either way the key's new credential is
// current; rotating the key again would retire it a whole period early.
func (db *DB) SettledByKey(ctx context.Context, key string) (Rotation, error) {
	return scanRotation(db.pool.QueryRow(ctx, settledByKeyQuery, key))
}

// settledByKeyQuery and byKeyQuery are served by rotations_by_request_key
// (migration 00011): rotations_request_key_once holds only running and
// succeeded rows, so without it the needs_attention arm read the whole
// table on every rotation of a fire.
const (
	settledByKeyQuery = `SELECT ` + rotationColumns + ` FROM rotations WHERE request_key = $1
		AND (outcome = 'succeeded' OR (outcome = 'needs_attention' AND step IN ('promote', 'finish')))
		ORDER BY outcome = 'succeeded' DESC, started_at DESC LIMIT 1`
	byKeyQuery = `SELECT ` + rotationColumns + ` FROM rotations WHERE request_key = $1 ORDER BY started_at`
)

// ByKey returns every rotation of a request key, oldest first.
func (db *DB) ByKey(ctx context.Context, key string) ([]Rotation, error) {
	return db.queryRotations(ctx, byKeyQuery, key)
}

// MarkNeedsAttention turns a failed rotation into needs_attention: its
// policy's attempt limit is spent.
func (db *DB) MarkNeedsAttention(ctx context.Context, token, reason string) error {
	_, err := db.pool.Exec(ctx, `
		WITH marked AS (
			UPDATE rotations SET outcome = 'needs_attention', error = coalesce(error || '; ', '') || $2, updated_at = $3
			WHERE token = $1 AND outcome = 'failed'
			RETURNING policy
		)
		UPDATE policy_state SET last_outcome = 'needs_attention', updated_at = $3
		FROM marked WHERE policy_state.policy = marked.policy AND policy_state.last_rotation = $1`,
		token, reason, db.now())
	if err != nil {
		return fmt.Errorf("mark rotation %s needs_attention: %w", token, err)
	}
	return nil
}

// History returns the latest rotations of policy, newest first.
func (db *DB) History(ctx context.Context, policy string, limit int) ([]Rotation, error) {
	return db.queryRotations(ctx, `SELECT `+rotationColumns+` FROM rotations
		WHERE policy = $1 ORDER BY started_at DESC, token DESC LIMIT $2`, policy, limit)
}

func (db *DB) queryRotations(ctx context.Context, sql string, args ...any) ([]Rotation, error) {
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Rotation
	for rows.Next() {
		r, err := scanRotation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
