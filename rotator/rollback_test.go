package rotator_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// otherWriterToken is the token of a pending version another tool writes.
const otherWriterToken = "0190b5a4-0000-7000-8000-00000000beef"

// replacePending acts as another writer that drops this rotation's pending
// version and writes its own: the file store refuses a second pending
// version, so the other writer discards the first. It returns the login
// the dropped version held.
func (b *bundle) replacePending() login {
	b.t.Helper()
	v, err := b.store.Get(b.ctx, "loadtest/checkout-db", providers.StagePending)
	require.NoError(b.t, err)
	var ours login
	require.NoError(b.t, json.Unmarshal(v.Value.Reveal(), &ours))
	require.NoError(b.t, b.store.DiscardPending(b.ctx, "loadtest/checkout-db", v.Token))
	_, err = b.store.PutPending(b.ctx, "loadtest/checkout-db", otherWriterToken,
		secret.FromString(`{"engine":"postgres","username":"`+b.username+`","password":"another-writers-password"}`))
	require.NoError(b.t, err)
	return ours
}

// TestRollbackUndoesTheTargetWhenPendingWasReplaced: another writer replaces
// the pending version after set (or after test). The rotation fails, and its
// rollback undoes the target from what it created although the store no
// longer has it: single puts the current password back, alternating the
// previous one, and the other writer's pending version is left to its owner.
func TestRollbackUndoesTheTargetWhenPendingWasReplaced(t *testing.T) {
	t.Parallel()
	for _, strategy := range []targets.Strategy{targets.Single, targets.Alternating} {
		for _, after := range []rotator.Step{rotator.StepSet, rotator.StepTest} {
			t.Run(fmt.Sprintf("%s/after_%s", strategy, after), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				p := b.policy(strategy, "")
				for range 2 {
					_, err := b.rotate(p, rotator.Options{})
					require.NoError(t, err)
				}
				current, _ := b.stage(providers.StageCurrent)
				previous, _ := b.stage(providers.StagePrevious)

				var ours login
				res, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
					if s == after {
						ours = b.replacePending()
						require.True(t, b.logsIn(ours), "set applied the rotation's password")
					}
					return nil
				}})
				require.Error(t, err)
				var stepErr *rotator.StepError
				require.ErrorAs(t, err, &stepErr)
				failsAt := rotator.StepTest // it reads pending
				if after == rotator.StepTest {
					failsAt = rotator.StepPromote
				}
				require.Equal(t, failsAt, stepErr.Step)
				require.Equal(t, state.OutcomeFailed, res.Outcome, stepErr.Reason)
				require.True(t, res.RolledBack)

				now, _ := b.stage(providers.StageCurrent)
				require.Equal(t, current, now)
				require.True(t, b.logsIn(current), "the current credential logs in")
				if strategy == targets.Alternating {
					require.True(t, b.logsIn(previous), "the previous credential logs in")
				}
				require.False(t, b.logsIn(ours), "the rolled back credential is refused")
				pending, err := b.store.Get(b.ctx, "loadtest/checkout-db", providers.StagePending)
				require.NoError(t, err)
				require.Equal(t, otherWriterToken, pending.Token, "the other writer's pending version is left alone")
			})
		}
	}
}

// TestRollbackThatCannotUndoNeedsAttention: when the target cannot be undone
// the rotation ends needs_attention, and its reason names what is left (the
// role that holds the rotation's password), never a value. Two ways: the
// target's Restore fails (its admin connection is gone), and a resumed
// rotation whose pending version another writer replaced never saw the
// password it set.
func TestRollbackThatCannotUndoNeedsAttention(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"restore_fails", "resumed_without_pending"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := b.policy(targets.Alternating, "")
			for range 2 {
				_, err := b.rotate(p, rotator.Options{})
				require.NoError(t, err)
			}
			previous, _ := b.stage(providers.StagePrevious)
			role := previous.Username

			var ours login
			var res rotator.Result
			var err error
			if how == "restore_fails" {
				res, err = b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
					if s == rotator.StepSet {
						ours = b.replacePending()
						// The admin connection goes: Restore cannot run.
						require.NoError(t, p.Target.Close())
					}
					return nil
				}})
			} else {
				_, err = b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
					if s == rotator.StepSet {
						return rotator.ErrCrash
					}
					return nil
				}})
				require.ErrorIs(t, err, rotator.ErrCrash)
				ours = b.replacePending()
				res, err = b.rotateAfterCrash(p)
				require.True(t, res.Resumed)
			}
			require.Error(t, err)
			require.Equal(t, role, ours.Username, "set changed the previous credential's role")
			require.Equal(t, state.OutcomeNeedsAttention, res.Outcome)
			require.False(t, res.RolledBack)
			want := fmt.Sprintf("what is left: this rotation's credential for %q may still be valid on the target, and the previous credential may no longer work", role)
			require.Contains(t, err.Error(), want)

			row, rowErr := b.state.Rotation(b.ctx, res.Token)
			require.NoError(t, rowErr)
			require.Equal(t, state.OutcomeNeedsAttention, row.Outcome)
			require.Contains(t, row.Error, want)
			audit, auditErr := b.state.Audit(b.ctx, "checkout-db", 100)
			require.NoError(t, auditErr)
			found := false
			for _, e := range audit {
				found = found || (e.Action == "rotation.needs_attention" && strings.Contains(fmt.Sprint(e.Detail["reason"]), want))
			}
			require.True(t, found, "an audit row gives the reason")
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), row.Error, b.logs.String()} {
				require.False(t, strings.Contains(text, ours.Password), "the rotation's password is in an error, row or log")
			}
			require.True(t, b.logsIn(ours), "what is left is what the reason names")
		})
	}
}

// TestRollbackWaitsOutACutAdminConnection: the fault that fails a step is
// often still there when the rollback runs. Here the server cuts the admin
// session right after set (as a restart does) and the rotation fails at
// test: the rollback's first restore meets the dead pooled connection, and
// the next one, on a new connection, puts the current password back. The
// outcome is failed and rolled back, and the current credential logs in;
// before the rollback tried again it ended needs_attention with the role
// holding the rotation's password, a lockout.
func TestRollbackWaitsOutACutAdminConnection(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.adminApp = pgtest.RoleName(t, "admin")
	p := b.policy(targets.Single, "")
	_, err := b.rotate(p, rotator.Options{})
	require.NoError(t, err)
	current, _ := b.stage(providers.StageCurrent)

	var ours login
	res, err := b.rotate(p, rotator.Options{AfterStep: func(s rotator.Step) error {
		if s != rotator.StepSet {
			return nil
		}
		ours = b.replacePending()
		var cut int
		require.NoError(t, b.db.Pool.QueryRow(b.ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, b.adminApp).Scan(&cut))
		require.Positive(t, cut, "the admin session set used is pooled")
		require.Eventually(t, func() bool {
			var left int
			require.NoError(t, b.db.Pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
				b.adminApp).Scan(&left))
			return left == 0
		}, 5*time.Second, 5*time.Millisecond)
		return nil
	}})
	require.Error(t, err)
	var stepErr *rotator.StepError
	require.ErrorAs(t, err, &stepErr)
	require.Equal(t, state.OutcomeFailed, res.Outcome, stepErr.Reason)
	require.True(t, res.RolledBack)
	require.True(t, b.logsIn(current), "the current credential logs in")
	require.False(t, b.logsIn(ours), "the rolled back credential is refused")
	require.Contains(t, b.logs.String(), "undoing the target failed; trying again")
	require.NotContains(t, b.logs.String(), ours.Password)
}
