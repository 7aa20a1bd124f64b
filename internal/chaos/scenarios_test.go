package chaos_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/chaos"
	"github.com/swarmkey/swarmkey/internal/faultproxy"
	"github.com/swarmkey/swarmkey/internal/gcpfake"
)

// TestScenarios repeats, one by one and without randomness, the cases in
// which the long run (`make chaos`) found an invariant broken, so that a fix
// can be checked in seconds. Each must leave every invariant intact.
func TestScenarios(t *testing.T) {
	h := chaos.New(t, chaos.Options{Seed: 1, Logf: t.Logf, Extra: []chaos.Policy{
		{Name: "single-aws-stray", Strategy: chaos.Single, Store: chaos.StoreAWS},
		{Name: "single-aws-drop", Strategy: chaos.Single, Store: chaos.StoreAWS},
	}})
	g := h.StartGCP()
	ctx := context.Background()

	// noNewViolations runs one case, which must inject kind, and fails
	// with what it broke.
	noNewViolations := func(t *testing.T, kind string, run func()) {
		t.Helper()
		before, injected := len(h.Stats.Violations()), h.Stats.Injections(kind)
		run()
		require.Equal(t, injected+1, h.Stats.Injections(kind), "the case injected %q", kind)
		var found []string
		for _, v := range h.Stats.Violations()[before:] {
			found = append(found, v.Invariant+": "+v.Policy+": "+v.Detail)
		}
		require.Empty(t, found, "\n%s", strings.Join(found, "\n\n"))
	}

	// A PutPending that fails after its reservation (the annotation
	// swarmkey.reserved-token) was written: the rollback finds no pending
	// version and leaves the reservation, and every later rotation is
	// refused ("rotation token … is writing a pending version").
	for _, kind := range []gcpfake.FaultKind{gcpfake.FaultUnavailable, gcpfake.FaultThrottle, gcpfake.FaultLost} {
		t.Run("gcp AddSecretVersion "+string(kind), func(t *testing.T) {
			noNewViolations(t, chaos.GCPPrefix+string(kind), func() {
				g.Inject(ctx, g.Policy("gcp-single"), chaos.GCPFault{
					Fault: gcpfake.Fault{Method: "AddSecretVersion", Nth: 1, Kind: kind}})
			})
		})
	}

	// Another writer moves the current alias back to the previous version
	// (which still logs in) between create and set: set finds current
	// moved, the rollback refuses to restore the role that is now current,
	// and the stale pending version can never be reconciled.
	t.Run("gcp current rolled back between create and set", func(t *testing.T) {
		// A previous version that logs in, for the writer to roll back to.
		require.NoError(t, g.Rotate(ctx, g.Policy("gcp-alt")))
		noNewViolations(t, chaos.AnotherWrite+"gcp roll current alias back", func() {
			g.Inject(ctx, g.Policy("gcp-alt"), chaos.GCPFault{
				Fault:  gcpfake.Fault{Method: "AddSecretVersion", Nth: 1, Kind: gcpfake.FaultHook},
				Writer: chaos.WriterRollBack})
		})
	})

	// Single, after set: another writer takes AWSPENDING (a version of
	// its own) or removes it. The test step finds no pending version of
	// its token, and the rollback restores nothing ("not ours", "nothing
	// to undo"), so the role keeps the password that only the unlabelled
	// version holds: current does not log in, and no later rotation can
	// reconcile it. A rotation's seventh GetSecretValue is the test step's
	// read of pending (before it: pending and current at the start, in
	// create and in set).
	for _, c := range []struct{ policy, writer string }{
		{"single-aws-stray", chaos.WriterStrayPending},
		{"single-aws-drop", chaos.WriterDropPending},
	} {
		t.Run("aws single "+c.writer+" after set", func(t *testing.T) {
			noNewViolations(t, chaos.AnotherWrite+c.writer, func() {
				h.InjectAWS(ctx, h.Policy(c.policy), chaos.AWSFault{Kind: faultproxy.Hook,
					Call: "secretsmanager.GetSecretValue", Nth: 7, Writer: c.writer})
			})
		})
	}

	// Another writer puts a version of its own under AWSPENDING (naming the
	// role that is not current) just before swarmkey's promote: the
	// promote makes that role current, and the stray pending version names
	// it, so reconciling it is refused for good.
	t.Run("aws stray pending before promote", func(t *testing.T) {
		noNewViolations(t, chaos.AnotherWrite+chaos.WriterStrayPending, func() {
			h.InjectAWS(ctx, h.Policy("alt-aws"), chaos.AWSFault{Kind: faultproxy.Hook,
				Call: "secretsmanager.UpdateSecretVersionStage", Nth: 1, Writer: chaos.WriterStrayPending})
		})
	})
}
