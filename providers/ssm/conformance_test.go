package ssm

import (
	"testing"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
)

// TestConformance runs the shared store suite against moto. PutPending
// creates the pending parameter with Overwrite=false, so the pending race
// holds in its strict form (no UnconditionalPendingLabel).
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		NewBackend: func(t *testing.T) providertest.Backend {
			p := prefix(t)
			return providertest.Backend{
				Open:             func(t *testing.T) providers.Store { return newStore(t, Options{Create: true}) },
				SecretID:         func(name string) string { return p + name },
				PendingOnCurrent: func(t *testing.T, id string) { writePendingOnCurrent(t, id) },
			}
		},
	})
}
