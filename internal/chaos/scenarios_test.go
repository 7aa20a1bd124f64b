package chaos_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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

	// The same on GCP with alternating: the role that set changed is
	// previous's, and previous no longer logs in.
	t.Run("gcp alternating stray pending alias after set", func(t *testing.T) {
		p := g.Policy("gcp-alt")
		require.NoError(t, g.Rotate(ctx, p))
		noNewViolations(t, chaos.AnotherWrite+"gcp stray pending alias", func() {
			g.Inject(ctx, p, chaos.GCPFault{
				Fault:  gcpfake.Fault{Method: "AccessSecretVersion", Nth: 5, Kind: gcpfake.FaultHook},
				Writer: chaos.WriterStrayPending})
		})
	})

	// The state database fails just before promote's calls (its sessions
	// cut, or the server down for a while): the store promotes, the record
	// of the step fails. The outcome recorded must be
	// what the store holds (issue 15: it said "rolled back, the current
	// credential is unchanged" although current had moved).
	for _, nth := range []int{1, 2} {
		for _, down := range []time.Duration{0, 3 * time.Second} {
			t.Run(fmt.Sprintf("state database fault (down %s) before promote call %d", down, nth), func(t *testing.T) {
				noNewViolations(t, chaos.StateDown+"a store call", func() {
					h.InjectStateDown(ctx, h.Policy("alt-aws"), "secretsmanager.UpdateSecretVersionStage", nth, down)
				})
			})
		}
	}

	// Another writer rolls AWSCURRENT back between promote's two calls:
	// the version swarmkey had just made current becomes AWSPREVIOUS, and
	// the rotation, finding its version not current, rolls back. Current is
	// what it was, so "rolled back" is true (the check once counted it as
	// an untrue outcome).
	t.Run("aws current rolled back between promote's calls", func(t *testing.T) {
		p := h.Policy("alt-aws")
		require.Equal(t, 0, h.RotateLocal(p, nil, time.Minute).Code)
		noNewViolations(t, chaos.AnotherWrite+chaos.WriterRollBack, func() {
			h.InjectAWS(ctx, p, chaos.AWSFault{Kind: faultproxy.Hook,
				Call: "secretsmanager.UpdateSecretVersionStage", Nth: 2, Writer: chaos.WriterRollBack})
		})
	})

	// A write killed between its fsync and its rename leaves a sealed copy
	// of the secret in a temp file; the next rotation's store must remove
	// it (issue 15: nothing did).
	t.Run("temp file of a killed write", func(t *testing.T) {
		p := h.Policy("single-file")
		noNewViolations(t, chaos.LeftTempFile, func() {
			h.LeaveTempFile(p)
			require.True(t, h.RecoverLocal(ctx, p, "a temp file left"))
			h.Check(ctx, p, false)
		})
	})

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
