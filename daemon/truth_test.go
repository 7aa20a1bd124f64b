package daemon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// failPromoteRecord makes the state database refuse to record a promote
// (the policy's current token changing) until the returned function lifts
// it: a real PostgreSQL error, raised by a trigger.
func failPromoteRecord(t *testing.T, b *daemonBundle) (lift func()) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, `
		CREATE FUNCTION refuse_promote_record() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.current_token IS DISTINCT FROM OLD.current_token THEN
				RAISE EXCEPTION 'injected: the state database refuses the promote record';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_promote_record BEFORE UPDATE ON policy_state
			FOR EACH ROW EXECUTE FUNCTION refuse_promote_record();`)
	require.NoError(t, err)
	return func() {
		_, err := b.pool.Exec(context.Background(), `DROP TRIGGER IF EXISTS refuse_promote_record ON policy_state`)
		require.NoError(t, err)
	}
}

// TestUnrecordedPromoteIsNotRolledBackNorRepeated: the store promotes, then
// the state database refuses to record it. The outcome follows the store:
// nothing is rolled back, the rotation stays unfinished, and the job's
// retry completes that same rotation. The request rotates once: the store's
// current is the version of the first attempt, its previous the version
// that was current before, and the target was applied once.
func TestUnrecordedPromoteIsNotRolledBackNorRepeated(t *testing.T) {
	t.Parallel()
	b := setupDaemonWindow(t, 1, "0 0 1 1 *", time.Hour, 0)
	seed := uuid.Must(uuid.NewV7()).String()
	_, err := b.files.PutPending(b.ctx, "p00", seed, secret.FromString(`{"value":"seed"}`))
	require.NoError(t, err)
	require.NoError(t, b.files.Promote(b.ctx, "p00", providers.PromoteRequest{Token: seed}))
	lift := failPromoteRecord(t, b)
	t.Cleanup(lift)

	attempts := make(chan rotator.Result, 10)
	d := b.startWith("a", nil, func(_ daemon.RotateArgs, res rotator.Result, err error) {
		if len(attempts) == 0 {
			// What the store holds after the first attempt, before any retry.
			current, getErr := b.files.Get(context.Background(), "p00", providers.StageCurrent)
			require.NoError(t, getErr)
			require.Equal(t, res.Token, current.Token, "the first attempt promoted in the store")
			require.Error(t, err)
			lift()
		}
		attempts <- res
	})
	args := daemon.RotateArgs{Policy: "p00", Key: "request:" + uuid.Must(uuid.NewV7()).String(), Slot: time.Now(), Actor: "operator:test"}
	opts := args.InsertOpts()
	opts.MaxAttempts = 3
	job, err := d.River().Insert(b.ctx, args, &opts)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		row, err := d.River().JobGet(b.ctx, job.Job.ID)
		require.NoError(t, err)
		return row.State == rivertype.JobStateCompleted || row.State == rivertype.JobStateDiscarded || row.State == rivertype.JobStateCancelled
	}, 30*time.Second, 100*time.Millisecond)
	row, err := d.River().JobGet(b.ctx, job.Job.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, row.State)

	rows, err := b.db.ByKey(b.ctx, args.Key)
	require.NoError(t, err)
	require.Len(t, rows, 1, "one rotation for the request")
	rot := rows[0]
	require.Equal(t, state.OutcomeSucceeded, rot.Outcome, rot.Error)
	require.False(t, rot.RolledBack)
	require.Equal(t, 1, rot.Resumes, "the retry resumed the rotation")

	current, err := b.files.Get(b.ctx, "p00", providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, rot.Token, current.Token, "the store's current is the request's one version")
	previous, err := b.files.Get(b.ctx, "p00", providers.StagePrevious)
	require.NoError(t, err)
	require.Equal(t, seed, previous.Token, "the version current before is previous, not retired by a second promote")
	ps, err := b.db.PolicyState(b.ctx, "p00")
	require.NoError(t, err)
	require.Equal(t, current.ID, ps.CurrentVersion, "the state database agrees with the store")
	require.Equal(t, rot.Token, ps.CurrentToken)
	require.Len(t, b.targets["p00"].times(), 1, "the target was applied once")
}

// TestRefusedRotationIsNotRetried: a pending version swarmkey did not write
// is refused, nothing changed. The job is cancelled at once, with one audit
// row, instead of being retried up to the attempt limit with a row each time.
func TestRefusedRotationIsNotRetried(t *testing.T) {
	t.Parallel()
	b := setupDaemonWindow(t, 1, "0 0 1 1 *", time.Hour, 0)
	_, err := b.files.PutPending(b.ctx, "p00", uuid.Must(uuid.NewV7()).String(), secret.FromString(`{"value":"another tool's"}`))
	require.NoError(t, err)
	d := b.start("a")
	args := daemon.RotateArgs{Policy: "p00", Key: "request:" + uuid.Must(uuid.NewV7()).String(), Slot: time.Now(), Actor: "operator:test"}
	opts := args.InsertOpts()
	opts.MaxAttempts = 3
	job, err := d.River().Insert(b.ctx, args, &opts)
	require.NoError(t, err)

	var row *rivertype.JobRow
	require.Eventually(t, func() bool {
		row, err = d.River().JobGet(b.ctx, job.Job.ID)
		require.NoError(t, err)
		return row.State == rivertype.JobStateCompleted || row.State == rivertype.JobStateDiscarded || row.State == rivertype.JobStateCancelled
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, rivertype.JobStateCancelled, row.State)
	require.Equal(t, 1, row.Attempt)
	entries, err := b.db.Audit(b.ctx, "p00", 100)
	require.NoError(t, err)
	refused := 0
	for _, e := range entries {
		if e.Action == "rotation.refused" {
			refused++
		}
	}
	require.Equal(t, 1, refused, "one audit row")
	require.Empty(t, b.targets["p00"].times())
}

// TestRotationThatPromotedIsNotRepeated: the finish step fails after the
// promote (the target cannot retire the old credential). The rotation ends
// needs_attention with the new credential current; the job ends there, and
// the request key counts as done: running it again rotates nothing.
func TestRotationThatPromotedIsNotRepeated(t *testing.T) {
	t.Parallel()
	b := setupDaemonWindow(t, 1, "0 0 1 1 *", time.Hour, 0)
	seed := uuid.Must(uuid.NewV7()).String()
	_, err := b.files.PutPending(b.ctx, "p00", seed, secret.FromString(`{"value":"seed"}`))
	require.NoError(t, err)
	require.NoError(t, b.files.Promote(b.ctx, "p00", providers.PromoteRequest{Token: seed}))
	b.targets["p00"].retireErr = errors.New("injected: the target cannot retire the old credential")
	d := b.start("a")
	args := daemon.RotateArgs{Policy: "p00", Key: "request:" + uuid.Must(uuid.NewV7()).String(), Slot: time.Now(), Actor: "operator:test"}
	opts := args.InsertOpts()
	opts.MaxAttempts = 3
	job, err := d.River().Insert(b.ctx, args, &opts)
	require.NoError(t, err)

	var row *rivertype.JobRow
	require.Eventually(t, func() bool {
		row, err = d.River().JobGet(b.ctx, job.Job.ID)
		require.NoError(t, err)
		return row.State == rivertype.JobStateCompleted || row.State == rivertype.JobStateDiscarded || row.State == rivertype.JobStateCancelled
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, rivertype.JobStateCancelled, row.State)
	require.Equal(t, 1, row.Attempt, "no second attempt")

	rows, err := b.db.ByKey(b.ctx, args.Key)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, state.OutcomeNeedsAttention, rows[0].Outcome)
	current, err := b.files.Get(b.ctx, "p00", providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, rows[0].Token, current.Token, "the new credential is current")

	// A retry of the request (a replica that crashed before it could end
	// the job) finds it done.
	policy, err := b.set.Policies["p00"].Open(b.ctx)
	require.NoError(t, err)
	res, err := rotator.New(b.db, rotator.Config{}).Rotate(b.ctx, policy, rotator.Options{Actor: "daemon", RequestKey: args.Key})
	require.NoError(t, err)
	require.True(t, res.AlreadyDone)
	require.Equal(t, state.OutcomeNeedsAttention, res.Outcome)
	require.Len(t, b.targets["p00"].times(), 1, "the target was applied once")
	again, err := b.files.Get(b.ctx, "p00", providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, current.ID, again.ID)
}
