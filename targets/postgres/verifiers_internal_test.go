package postgres

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/xdg-go/scram"

	"github.com/swarmkey/swarmkey/secret"
)

// requireVerifierOf checks that v is a SCRAM verifier of pw: its keys,
// recomputed from its salt, match.
func requireVerifierOf(t *testing.T, v string, pw secret.Secret) {
	t.Helper()
	saltB64, keys, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$4096:"), "$")
	require.True(t, ok)
	storedB64, serverB64, ok := strings.Cut(keys, ":")
	require.True(t, ok)
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	require.NoError(t, err)
	c, err := scram.SHA256.NewClient("", pw.RevealString(), "")
	require.NoError(t, err)
	creds, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: scramIterations})
	require.NoError(t, err)
	require.Equal(t, base64.StdEncoding.EncodeToString(creds.StoredKey), storedB64, "the verifier is not one of this password")
	require.Equal(t, base64.StdEncoding.EncodeToString(creds.ServerKey), serverB64, "the verifier is not one of this password")
}

// TestApplyTakesTheVerifierCreateDerived: the verifier Create began to
// derive is the one Apply gets for the same token and password (each
// derivation has a fresh salt, so the same string means the same
// derivation); a different password or token gets a verifier of its own,
// derived then; a forgotten one is gone.
func TestApplyTakesTheVerifierCreateDerived(t *testing.T) {
	t.Parallel()
	var v verifierDerivations
	pw := secret.FromString("first password")
	v.start("token-1", pw)
	v.mu.Lock()
	derived := v.byToken["token-1"]
	v.mu.Unlock()
	require.NotNil(t, derived)
	<-derived.done

	got, err := v.take("token-1", pw)
	require.NoError(t, err)
	require.Equal(t, derived.verifier, got, "Apply did not get the verifier Create derived")
	requireVerifierOf(t, got, pw)

	// Taken once: a second take derives anew.
	again, err := v.take("token-1", pw)
	require.NoError(t, err)
	require.NotEqual(t, got, again)
	requireVerifierOf(t, again, pw)

	// Another password under the same token never gets the derived one.
	v.start("token-2", pw)
	other := secret.FromString("second password")
	got, err = v.take("token-2", other)
	require.NoError(t, err)
	requireVerifierOf(t, got, other)

	// A rotation that ended without Apply leaves nothing behind.
	v.start("token-3", pw)
	v.forget("token-3")
	v.mu.Lock()
	require.Empty(t, v.byToken)
	v.mu.Unlock()
}
