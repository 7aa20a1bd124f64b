package aws

import (
	"testing"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
)

// TestConformance runs the shared store suite against moto. Every case gets
// its own random secret-name prefix instead of a moto reset, so the cases
// run in parallel without seeing each other.
//
// PutSecretValue moves AWSPENDING without a condition, so two PutPending
// calls that both passed the pending check both succeed, the later one
// holding AWSPENDING (see TestPutPendingRaceWindow); the suite's race case
// checks the weaker property for such stores: the other token cannot be
// promoted. In swarmkey the rotator's per-policy advisory lock keeps two
// rotations of one secret from racing there at all.
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		UnconditionalPendingLabel: true,
		NewBackend: func(t *testing.T) providertest.Backend {
			p := prefix(t)
			return providertest.Backend{
				Open: func(t *testing.T) providers.Store {
					return newStore(t, Options{Create: true})
				},
				SecretID: func(name string) string { return p + name },
				// As AWS's own rotation functions finish a rotation.
				PendingOnCurrent: func(t *testing.T, id string) { labelCurrentPending(t, rawClient(t), id) },
			}
		},
	})
}
