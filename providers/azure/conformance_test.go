package azure

import (
	"testing"

	"github.com/swarmkey/swarmkey/internal/azurefake"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
)

// TestConformance runs the shared store suite on the in-process model of
// Key Vault (internal/azurefake, served by the SDK's fake server), a fresh
// vault per case. Key Vault has no conditional write, so two PutPending
// calls that race may both succeed: the race case checks the weaker
// property (UnconditionalPendingLabel).
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		UnconditionalPendingLabel: true,
		NewBackend: func(t *testing.T) providertest.Backend {
			vault := azurefake.New()
			return providertest.Backend{
				Open:             func(t *testing.T) providers.Store { return newStore(t, vault, Options{Create: true}) },
				SecretID:         func(name string) string { return name },
				PendingOnCurrent: func(t *testing.T, id string) { enableCurrentStaging(t, vault, id) },
			}
		},
	})
}
