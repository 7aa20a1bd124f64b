package azure

import (
	"testing"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/azurefake"
)

// newStore returns a Store on vault, authenticated by the SDK's fake
// credential.
func newStore(tb testing.TB, vault *azurefake.Vault, opts Options) *Store {
	tb.Helper()
	opts.VaultURL = azurefake.URL
	s, err := NewWithCredential(opts, &azfake.TokenCredential{}, vault.ClientOptions())
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

// enableCurrentStaging puts the pending stage back on the current version:
// it enables the staging version that the current version's tag names, as
// a promote that stopped before its last call leaves it.
func enableCurrentStaging(tb testing.TB, vault *azurefake.Vault, id string) {
	tb.Helper()
	raw := vault.Client(tb)
	cur, err := raw.GetSecret(tb.Context(), id, "", nil)
	require.NoError(tb, err)
	pv := cur.Tags[tagPendingVersion]
	require.NotNil(tb, pv, "the current version carries swarmkey's tag")
	_, err = raw.UpdateSecretProperties(tb.Context(), id+DefaultPendingSuffix, *pv, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(true)},
	}, nil)
	require.NoError(tb, err)
}
