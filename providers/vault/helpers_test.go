package vault

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/vaulttest"
)

// Every test of the package talks to the one server vaulttest runs for
// this test binary: a real OpenBao dev server when `make test` provides
// one, the in-process fake of KV v2 otherwise (the test output says which).
func TestMain(m *testing.M) { os.Exit(vaulttest.Run(m)) }

// tokenFile writes token to a file of mode 600 and returns its path.
func tokenFile(tb testing.TB, token string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "token")
	require.NoError(tb, os.WriteFile(path, []byte(token+"\n"), 0o600))
	return path
}

// newStore returns a Store on the test server, logged in with the root
// token through auth.token_file.
func newStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	srv := vaulttest.Start(tb)
	opts.Address = srv.Addr
	opts.Auth = Auth{TokenFile: tokenFile(tb, srv.RootToken)}
	s, err := New(tb.Context(), opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

// rawKV is a plain client of the mount, for arranging state behind the
// store's back as another writer (or a reader) would.
func rawKV(tb testing.TB) *vaultapi.KVv2 {
	tb.Helper()
	return vaulttest.Start(tb).Client(tb).KVv2(vaulttest.Mount)
}

// undeleteCurrentStaging puts the pending stage back on the current
// version: it undeletes the staging version that the current version's
// record names, as a promote that stopped before its last call leaves it.
func undeleteCurrentStaging(tb testing.TB, id string) {
	tb.Helper()
	ctx := tb.Context()
	kv := rawKV(tb)
	cur, err := kv.Get(ctx, id)
	require.NoError(tb, err)
	pid, _, ok := record(cur.CustomMetadata, cur.VersionMetadata.Version)
	require.True(tb, ok, "the current version has swarmkey's record")
	n := 0
	n, err = strconv.Atoi(pid[1:])
	require.NoError(tb, err)
	require.NoError(tb, kv.Undelete(ctx, DefaultPendingPrefix+"/"+id, []int{n}))
}
