package vault

import (
	"testing"

	"github.com/swarmkey/swarmkey/internal/vaulttest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
)

// TestConformance runs the shared store suite on the test server. Every
// case gets its own random path prefix, so the cases run in parallel
// without seeing each other. Both data writes are check-and-set, so the
// race cases hold in their strict form (no UnconditionalPendingLabel).
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		NewBackend: func(t *testing.T) providertest.Backend {
			p := vaulttest.Prefix(t)
			return providertest.Backend{
				Open:             func(t *testing.T) providers.Store { return newStore(t, Options{Create: true}) },
				SecretID:         func(name string) string { return p + name },
				PendingOnCurrent: func(t *testing.T, id string) { undeleteCurrentStaging(t, id) },
			}
		},
	})
}
