package postgres

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/secret"
)

func TestScramVerifierShapeAndKeys(t *testing.T) {
	t.Parallel()
	pw := secret.FromString(`pa'ss"wo\rd $1`)
	v, err := SCRAMVerifier(pw)
	require.NoError(t, err)
	require.Regexp(t, verifierShape(), v)

	// Recompute the keys from the salt in the verifier: they must match.
	saltB64, _, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$4096:"), "$")
	require.True(t, ok)
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	require.NoError(t, err)
	require.Len(t, salt, 16)
	requireVerifierOf(t, v, pw)

	// A fresh salt each time.
	v2, err := SCRAMVerifier(pw)
	require.NoError(t, err)
	require.NotEqual(t, v, v2)
	require.NotContains(t, v, pw.RevealString())

	_, err = SCRAMVerifier(secret.Secret{})
	require.Error(t, err)

	// SASLprep rejects a control character; like PostgreSQL, fall back to the raw bytes.
	_, err = SCRAMVerifier(secret.FromString("bell\a-password"))
	require.NoError(t, err)
}

func TestPasswordLiteralRefusesOtherShapes(t *testing.T) {
	t.Parallel()
	v, err := SCRAMVerifier(secret.FromString("x"))
	require.NoError(t, err)
	lit, err := passwordLiteral(v)
	require.NoError(t, err)
	require.Equal(t, "'"+v+"'", lit)

	for _, bad := range []string{
		"", "plaintext", v + "'; DROP ROLE postgres; --", v[:len(v)-1] + "'",
		strings.Replace(v, "4096", "1", 1), "md5" + strings.Repeat("a", 32), v + "\n",
	} {
		_, err := passwordLiteral(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestDSNQuote(t *testing.T) {
	t.Parallel()
	require.Equal(t, `'it\'s a \\ role'`, dsnQuote(`it's a \ role`))
}
