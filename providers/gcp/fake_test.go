package gcp

import (
	"context"
	"testing"

	"github.com/swarmkey/swarmkey/internal/gcpfake"
)

// openStore returns a store on the fake, on a connection of its own, closed
// when the test ends.
func openStore(tb testing.TB, f *gcpfake.Server, opts Options) *Store {
	tb.Helper()
	if opts.Project == "" {
		opts.Project = gcpfake.Project
	}
	s, err := New(context.Background(), opts, f.ClientOptions(tb)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
