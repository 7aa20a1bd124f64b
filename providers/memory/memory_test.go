package memory_test

import (
	"testing"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/memory"
	"github.com/swarmkey/swarmkey/providers/providertest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{NewBackend: func(t *testing.T) providertest.Backend {
		b := memory.NewBackend()
		return providertest.Backend{
			Open:     func(t *testing.T) providers.Store { return memory.New(b) },
			SecretID: func(name string) string { return name },
		}
	}})
}
