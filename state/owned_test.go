package state_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/state"
)

// TestPendingVersionIsRecordedWithItsRotation: the version id a rotation's
// PutPending produced is kept on its row, which is how the rotator knows the
// version is swarmkey's.
func TestPendingVersionIsRecordedWithItsRotation(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)
	const token = "0190b5a4-0000-7000-8000-000000000001"
	require.NoError(t, db.InsertRotation(ctx, state.Rotation{Token: token, Policy: "p", Strategy: "single", Store: "gcp",
		SecretID: "s", Actor: "test"}, state.AuditEntry{Actor: "test", Action: "rotation.started"}))
	row, err := db.Rotation(ctx, token)
	require.NoError(t, err)
	require.Empty(t, row.PendingVersion, "nothing written yet")

	require.NoError(t, db.RecordPendingVersion(ctx, token, "7"))
	require.NoError(t, db.RecordPendingVersion(ctx, token, "7"), "again after a crash")
	row, err = db.RunningRotation(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, "7", row.PendingVersion)

	require.ErrorIs(t, db.RecordPendingVersion(ctx, "0190b5a4-0000-7000-8000-000000000002", "8"), state.ErrNotFound)
}

// TestPolicyStateReadsOnlyItsOwnRow: one policy's state is read by its key,
// not picked out of every policy's. The daemon asks for one policy each
// time a fire's window closed; reading all of 100,000 rows for each of
// the many that close after an outage would stall it. Another policy's row
// that cannot be read (a rotated_at of infinity, which no time.Time holds)
// shows which rows were read.
func TestPolicyStateReadsOnlyItsOwnRow(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)
	for _, name := range []string{"p", "q"} {
		require.NoError(t, db.RecordRefusal(ctx, state.PolicyState{Policy: name, Strategy: "single", Store: "aws", SecretID: name},
			"refused", state.AuditEntry{Actor: "daemon", Policy: name, Action: "rotation.refused"}))
	}
	_, err := db.Pool().Exec(ctx, `UPDATE policy_state SET rotated_at = 'infinity' WHERE policy = 'q'`)
	require.NoError(t, err)

	got, err := db.PolicyState(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, "p", got.Policy)
	require.Equal(t, "refused", got.LastOutcome)
	_, err = db.PolicyState(ctx, "q")
	require.ErrorContains(t, err, `policy "q"`, "the unreadable row itself is an error that names it")
	_, err = db.PolicyState(ctx, "none")
	require.ErrorIs(t, err, state.ErrNotFound)
}

// TestRefusalAndResolutionShowInTheStateAndTheAuditLog: a refusal sets the
// policy's last outcome without a rotation row; an operator's resolution
// clears it, and a promoted version becomes the policy's current one, with
// no token when another tool wrote it.
func TestRefusalAndResolutionShowInTheStateAndTheAuditLog(t *testing.T) {
	t.Parallel()
	db, ctx := setup(t)
	ps := state.PolicyState{Policy: "p", Strategy: "single", Store: "aws", SecretID: "s"}

	require.NoError(t, db.RecordRefusal(ctx, ps, "pending version v9 is not swarmkey's",
		state.AuditEntry{Actor: "daemon", Policy: "p", Action: "rotation.refused", Detail: map[string]any{"pending_version": "v9"}}))
	got, err := db.PolicyState(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, "refused", got.LastOutcome)
	require.Contains(t, got.LastError, "v9")
	rows, err := db.History(ctx, "p", 10)
	require.NoError(t, err)
	require.Empty(t, rows, "a refusal is no rotation")

	discarded := state.AuditEntry{Actor: "operator:alice", Policy: "p", Action: "rotation.resolved", Detail: map[string]any{"action": "discard-pending"}}
	require.NoError(t, db.RecordResolved(ctx, ps, false, discarded))
	got, err = db.PolicyState(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, "resolved", got.LastOutcome)
	require.Empty(t, got.LastError)
	require.Empty(t, got.CurrentVersion, "a discard makes nothing current")

	promoted := ps
	promoted.CurrentVersion, promoted.Principal = "v9", "app"
	require.NoError(t, db.RecordResolved(ctx, promoted, true,
		state.AuditEntry{Actor: "operator:alice", Policy: "p", Action: "rotation.resolved", Detail: map[string]any{"action": "promote-pending"}}))
	got, err = db.PolicyState(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, "v9", got.CurrentVersion)
	require.Empty(t, got.CurrentToken, "another tool's version has no token of ours")
	require.Equal(t, "app", got.Principal)
	require.NotNil(t, got.RotatedAt)

	entries, err := db.Audit(ctx, "p", 10)
	require.NoError(t, err)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+" "+e.Actor)
	}
	require.Equal(t, []string{"rotation.refused daemon", "rotation.resolved operator:alice", "rotation.resolved operator:alice"}, actions)
}
