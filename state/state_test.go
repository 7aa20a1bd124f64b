package state_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/state"
)

func setup(t *testing.T) (*state.DB, context.Context) {
	t.Helper()
	ctx := context.Background()
	db, err := state.Open(ctx, pgtest.New(t).URL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	_, err = db.Migrate(ctx)
	require.NoError(t, err)
	return db, ctx
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)

	applied, err := db.Migrate(ctx)
	require.NoError(t, err)
	require.Zero(t, applied, "a second migrate applies nothing")
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)

	require.NoError(t, db.AppendAudit(ctx, state.AuditEntry{Actor: "operator:test", Policy: "p", Action: "rotation.started",
		Detail: map[string]any{"step": "create"}}))

	for _, sql := range []string{
		`UPDATE audit_log SET actor = 'someone-else'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
	} {
		_, err := db.Pool().Exec(ctx, sql)
		require.ErrorContains(t, err, "append-only", sql)
	}
	entries, err := db.Audit(ctx, "p", 10)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "operator:test", entries[0].Actor)
	require.Equal(t, "create", entries[0].Detail["step"])
}

func TestPolicyLockIsExclusiveAndDiesWithItsSession(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)

	held, err := db.TryLockPolicy(ctx, "checkout-db")
	require.NoError(t, err)

	_, err = db.TryLockPolicy(ctx, "checkout-db")
	require.ErrorIs(t, err, state.ErrLocked)

	other, err := db.TryLockPolicy(ctx, "other-policy")
	require.NoError(t, err, "locks are per policy")
	other.Release()

	held.Abandon() // as if the process died: the session ends
	// The server releases the lock when it notices the closed connection,
	// a moment after the client closed it.
	var again *state.PolicyLock
	require.Eventually(t, func() bool {
		again, err = db.TryLockPolicy(ctx, "checkout-db")
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	again.Release()

	again, err = db.TryLockPolicy(ctx, "checkout-db")
	require.NoError(t, err, "Release gives the lock back")
	again.Release()
}

func TestOneRunningRotationPerPolicy(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)

	row := state.Rotation{Token: "0190b5a4-0000-7000-8000-000000000001", Policy: "p", Strategy: "single", Store: "file", SecretID: "p", Actor: "test"}
	started := state.AuditEntry{Actor: "test", Action: "rotation.started"}
	require.NoError(t, db.InsertRotation(ctx, row, started))
	row.Token = "0190b5a4-0000-7000-8000-000000000002"
	require.Error(t, db.InsertRotation(ctx, row, started), "a second unfinished rotation of one policy is refused")
	entries, err := db.Audit(ctx, "p", 10)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the refused insert wrote no audit entry either")

	require.NoError(t, db.CompleteStep(ctx, "0190b5a4-0000-7000-8000-000000000001", "create", "alice",
		state.StepTiming{Step: "create", Started: time.Now(), Duration: time.Millisecond}))
	require.NoError(t, db.FinishRotation(ctx, "0190b5a4-0000-7000-8000-000000000001", state.OutcomeFailed, "set: refused", true, nil, false,
		state.AuditEntry{Actor: "test", Action: "rotation.failed"}))
	require.NoError(t, db.InsertRotation(ctx, row, started), "after the first finished, a new one may start")

	got, err := db.Rotation(ctx, "0190b5a4-0000-7000-8000-000000000001")
	require.NoError(t, err)
	require.Equal(t, state.OutcomeFailed, got.Outcome)
	require.Equal(t, "create", got.Step)
	require.Equal(t, "alice", got.Principal)
	require.True(t, got.RolledBack)
	require.Len(t, got.Steps, 1)
}

func TestOpenUnreachableDatabaseSaysWhereAndHidesPassword(t *testing.T) {
	t.Parallel()

	_, err := state.Open(context.Background(), "postgres://swarmkey:sup3r-s3cret-pw@127.0.0.1:1/state?connect_timeout=2")
	require.Error(t, err)
	require.Contains(t, err.Error(), "127.0.0.1:1")
	require.Contains(t, err.Error(), "unreachable")
	require.NotContains(t, err.Error(), "sup3r-s3cret-pw")

	_, err = state.Open(context.Background(), "postgres://swarmkey:sup3r-s3cret-pw@127.0.0.1:notaport/state")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "sup3r-s3cret-pw")
}

// TestSessionsNameThemselves: sessions are "swarmkey" in pg_stat_activity
// unless the URL names them (the chaos harness tells replicas apart so).
func TestSessionsNameThemselves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.New(t).URL
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, c := range []struct{ url, want string }{
		{url, "swarmkey"},
		{url + sep + "application_name=replica-b", "replica-b"},
	} {
		pool, err := state.Connect(ctx, c.url)
		require.NoError(t, err)
		var name string
		require.NoError(t, pool.QueryRow(ctx, `SHOW application_name`).Scan(&name))
		pool.Close()
		require.Equal(t, c.want, name)
	}
}

// TestOpenRotationsReadOnlyTheirPolicy: the read every rotation starts with
// (its policy's running rotation and rotations due to retire) uses indexes
// led by the policy even when the statistics are those of an empty table,
// as after a burst of rotations that autoanalyze has not caught up with.
// Before migration 00010 the plan read every policy's due rows through
// rotations_retire_due: 20 to 50 ms a rotation at 100,000 policies.
func TestOpenRotationsReadOnlyTheirPolicy(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)
	_, err := db.Pool().Exec(ctx, `
		INSERT INTO rotations (token, policy, strategy, store, secret_id, step, outcome, actor, retire_after, finished_at)
		SELECT gen_random_uuid(), 'p' || i, 'single', 'file', 's' || i, 'finish', 'succeeded', 'test',
			now() - interval '1 minute', now()
		FROM generate_series(1, 20000) i`)
	require.NoError(t, err)

	// The plan a pooled connection caches for the prepared statement.
	plan := pgtest.PreparedPlan(t, ctx, db.Pool(), "force_generic_plan", state.OpenRotationsQuery, "text, timestamptz", "'p77', now()")
	require.NotContains(t, plan, `"Index Name": "rotations_retire_due"`, "the plan reads every policy's due rotations")
	require.NotContains(t, plan, `"Seq Scan"`, "the plan reads the whole table")
	open, err := db.OpenRotationsOf(ctx, "p77", time.Now())
	require.NoError(t, err)
	require.Len(t, open.RetireDue, 1)
	require.Equal(t, "p77", open.RetireDue[0].Policy)
}

// TestKeyReadsUseAnIndex: the daemon asks whether a fire's request key
// already settled before every rotation of it, and reads a key's rotations
// when it enqueues; both must find the key through an index whatever its
// rows' outcomes. Before migration 00011 the settled read's needs_attention
// arm had none, and every rotation read the whole table: some 4,000 pages a
// call at 70,000 rotations, most of the state database's CPU in the
// 100,000-policy lag benchmark.
func TestKeyReadsUseAnIndex(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)
	_, err := db.Pool().Exec(ctx, `
		INSERT INTO rotations (token, policy, strategy, store, secret_id, step, outcome, actor, request_key, finished_at)
		SELECT gen_random_uuid(), 'p' || i, 'single', 'file', 's' || i,
			CASE WHEN i % 10 = 0 THEN 'promote' ELSE 'finish' END,
			CASE WHEN i % 10 = 0 THEN 'needs_attention' WHEN i % 10 = 1 THEN 'failed' ELSE 'succeeded' END,
			'test', 'fire:p' || i || ':2026-11-30T00:00:00Z', now()
		FROM generate_series(1, 20000) i`)
	require.NoError(t, err)

	for _, stats := range []string{"no statistics", "analyzed"} {
		if stats == "analyzed" {
			_, err = db.Pool().Exec(ctx, `ANALYZE rotations`)
			require.NoError(t, err)
		}
		for _, q := range []struct{ name, sql string }{
			{"SettledByKey", state.SettledByKeyQuery},
			{"ByKey", state.ByKeyQuery},
		} {
			for _, mode := range []string{"auto", "force_generic_plan"} {
				t.Run(q.name+"/"+stats+"/"+mode, func(t *testing.T) {
					plan := pgtest.PreparedPlan(t, ctx, db.Pool(), mode, q.sql, "text", "'fire:p70:2026-11-30T00:00:00Z'")
					require.NotContains(t, plan, `"Seq Scan"`, "the plan reads the whole table")
				})
			}
		}
	}
	settled, err := db.SettledByKey(ctx, "fire:p70:2026-11-30T00:00:00Z")
	require.NoError(t, err)
	require.Equal(t, state.OutcomeNeedsAttention, settled.Outcome)
	rows, err := db.ByKey(ctx, "fire:p71:2026-11-30T00:00:00Z")
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, "p71", rows[0].Policy)
}
