package gcp

import (
	"testing"

	"github.com/swarmkey/swarmkey/internal/gcpfake"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/providertest"
)

// TestConformance runs the shared provider suite, each case on a fake of its
// own; Open twice gives two clients (two connections) of that one fake.
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{NewBackend: func(t *testing.T) providertest.Backend {
		f := gcpfake.Start(t)
		return providertest.Backend{
			Open:     func(t *testing.T) providers.Store { return openStore(t, f, Options{Create: true}) },
			SecretID: func(name string) string { return name },
			PendingOnCurrent: func(t *testing.T, id string) {
				meta, _ := f.Snapshot(t, id)
				aliases := map[string]int64{}
				for k, v := range meta.GetVersionAliases() {
					aliases[k] = v
				}
				aliases["pending"] = aliases["current"]
				f.SetAliases(t, id, aliases)
			},
		}
	}})
}
