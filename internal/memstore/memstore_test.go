package memstore_test

import (
	"testing"

	"github.com/swarmkey/swarmkey/internal/memstore"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{NewBackend: func(t *testing.T) providertest.Backend {
		b := memstore.NewBackend()
		return providertest.Backend{
			Open:             func(t *testing.T) providers.Store { return memstore.New(b) },
			SecretID:         func(name string) string { return name },
			PendingOnCurrent: func(_ *testing.T, id string) { b.PendingOnCurrent(id) },
		}
	}})
}
