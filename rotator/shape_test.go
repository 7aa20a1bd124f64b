package rotator_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// foreignToken is the token of a current version another tool wrote.
const foreignToken = "0190b5a4-0000-7000-8000-0000000f0e19"

// putForeignCurrent makes value the current version, as another tool
// writing the secret would, and returns the version's id.
func (b *bundle) putForeignCurrent(value secret.Secret) string {
	b.t.Helper()
	v, err := b.store.PutPending(b.ctx, "loadtest/checkout-db", foreignToken, value)
	require.NoError(b.t, err)
	require.NoError(b.t, b.store.Promote(b.ctx, "loadtest/checkout-db", providers.PromoteRequest{Token: foreignToken}))
	return v.ID
}

// unreadableCurrents are current values the postgres target cannot read,
// each holding the role's working password in some form.
func (b *bundle) unreadableCurrents() map[string]secret.Secret {
	return map[string]secret.Secret{
		"a plain string":    secret.FromString(b.initialPassword),
		"binary":            secret.New(append([]byte{0xff, 0x00, 0xfe}, b.initialPassword...)),
		"fields missing":    secret.FromString(`{"username":"` + b.username + `","pwd":"` + b.initialPassword + `"}`),
		"another principal": secret.FromString(`{"username":"someone_else","password":"` + b.initialPassword + `"}`),
	}
}

// TestUnreadableCurrentStopsBeforeTheTarget: a current version the postgres
// target cannot read stops the rotation at create with an error naming the
// secret, the version and the fields expected, and nothing changes: not the
// role's password, not the store.
func TestUnreadableCurrentStopsBeforeTheTarget(t *testing.T) {
	t.Parallel()
	for _, strategy := range []targets.Strategy{targets.Single, targets.Alternating} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			for _, what := range []string{"a plain string", "binary", "fields missing", "another principal"} {
				t.Run(strings.ReplaceAll(what, " ", "_"), func(t *testing.T) {
					b := setup(t)
					p := b.policy(strategy, "")
					value, ok := b.unreadableCurrents()[what]
					require.True(t, ok)
					version := b.putForeignCurrent(value)
					verifier := rolpassword(b, b.username)

					res, err := b.rotate(p, rotator.Options{})
					require.Error(t, err)
					var unread *rotator.UnreadableCurrentError
					require.ErrorAs(t, err, &unread)
					require.Equal(t, version, unread.Version)
					roles := fmt.Sprintf("%q", b.username)
					if strategy == targets.Alternating {
						roles += fmt.Sprintf(" or %q", b.username+"_b")
					}
					require.Contains(t, err.Error(), fmt.Sprintf(`create: secret "loadtest/checkout-db": current version %s is not a postgres document (`, version))
					require.Contains(t, err.Error(), fmt.Sprintf(`: expected a JSON object with username %s and password (engine, host, port, dbname optional); nothing was changed`, roles))
					require.Equal(t, state.OutcomeFailed, res.Outcome)
					require.False(t, strings.Contains(err.Error(), b.initialPassword), "the current value is in the error")

					require.Equal(t, verifier, rolpassword(b, b.username), "the role's password is unchanged")
					require.True(t, b.logsIn(login{b.username, b.initialPassword}), "the role's password still logs in")
					current, err := b.store.Get(b.ctx, "loadtest/checkout-db", providers.StageCurrent)
					require.NoError(t, err)
					require.Equal(t, version, current.ID)
					_, pending := b.stage(providers.StagePending)
					require.False(t, pending)
				})
			}
		})
	}
}

// TestReplaceUnreadableCurrent: with ReplaceUnreadableCurrent the rotation
// replaces a current version the target cannot read, audited as
// rotation.adopted with the actor and the version; the replaced version,
// previous now, is passed to the target as none, so the rotations after it
// work too (alternating's finish and rollback included).
func TestReplaceUnreadableCurrent(t *testing.T) {
	t.Parallel()
	for _, strategy := range []targets.Strategy{targets.Single, targets.Alternating} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := b.policy(strategy, "")
			version := b.putForeignCurrent(b.unreadableCurrents()["fields missing"])

			res, err := b.rotate(p, rotator.Options{Actor: "operator:alice", ReplaceUnreadableCurrent: true})
			require.NoError(t, err)
			require.Equal(t, state.OutcomeSucceeded, res.Outcome)
			require.Equal(t, version, res.Replaced)
			current, _ := b.stage(providers.StageCurrent)
			require.True(t, b.logsIn(current))
			previous, err := b.store.Get(b.ctx, "loadtest/checkout-db", providers.StagePrevious)
			require.NoError(t, err)
			require.Equal(t, version, previous.ID, "the replaced version is previous")

			audit, err := b.state.Audit(b.ctx, "checkout-db", 100)
			require.NoError(t, err)
			var adopted []string
			for _, e := range audit {
				if e.Action == "rotation.adopted" {
					adopted = append(adopted, fmt.Sprintf("%s %s %v", e.Actor, e.Rotation, e.Detail["replaced_version"]))
					require.Contains(t, fmt.Sprint(e.Detail["reason"]), "not a postgres document")
					require.False(t, strings.Contains(fmt.Sprint(e.Detail), b.initialPassword), "the replaced value is in the audit row")
				}
			}
			require.Equal(t, []string{fmt.Sprintf("operator:alice %s %s", res.Token, version)}, adopted)

			// With the replaced version previous: a rotation that fails, then
			// one that succeeds.
			_, err = b.rotate(b.policy(strategy, "SELECT * FROM forbidden"), rotator.Options{})
			require.ErrorContains(t, err, "canary")
			var stepErr *rotator.StepError
			require.ErrorAs(t, err, &stepErr)
			require.Equal(t, state.OutcomeFailed, stepErr.Outcome, stepErr.Reason)
			require.True(t, b.logsIn(current), "the current credential logs in after the rollback")
			res, err = b.rotate(p, rotator.Options{})
			require.NoError(t, err)
			require.Equal(t, state.OutcomeSucceeded, res.Outcome)
			now, _ := b.stage(providers.StageCurrent)
			require.True(t, b.logsIn(now))
			if strategy == targets.Alternating {
				require.True(t, b.logsIn(current), "the previous credential logs in")
			}
		})
	}
}

// rolpassword reads the role's stored verifier.
func rolpassword(b *bundle, role string) string {
	b.t.Helper()
	var v *string
	require.NoError(b.t, b.db.Pool.QueryRow(b.ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&v))
	require.NotNil(b.t, v)
	return *v
}
