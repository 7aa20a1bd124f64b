package gcp

import (
	"context"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

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

// seedPending creates secret id in the fake with one version holding data
// under alias pending, tagged with token, as PutPending would leave it.
func seedPending(tb testing.TB, f *gcpfake.Server, id, token string, data []byte) {
	tb.Helper()
	f.Seed(id)
	n := f.AddVersion(tb, id, data)
	f.Mutate(tb, id, func(s *secretmanagerpb.Secret) {
		s.VersionAliases = map[string]int64{"pending": n}
		s.Annotations = map[string]string{tokenKey(n): token}
	})
}
