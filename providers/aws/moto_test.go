package aws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/mototest"
)

// Every test and benchmark of the package talks to the one moto server that
// internal/mototest runs for this test binary.
func TestMain(m *testing.M) { os.Exit(mototest.Run(m)) }

// newStore returns a Store on moto.
func newStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	s, err := NewFromConfig(mototest.Config(tb), opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

// rawClient is a plain SDK client on moto, for arranging state behind the
// store's back.
func rawClient(tb testing.TB) *secretsmanager.Client {
	tb.Helper()
	return secretsmanager.NewFromConfig(mototest.Config(tb))
}

// prefix returns a random secret-name prefix, so parallel tests never see
// each other's secrets and moto is never reset under them.
func prefix(tb testing.TB) string { return mototest.Prefix(tb) }

// newToken returns a fresh rotation token (a UUID, as AWS expects of a
// ClientRequestToken: 32 to 64 characters).
func newToken(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(tb, err)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// createSecret makes secret name on moto with an initial current value and
// returns its version id.
func createSecret(tb testing.TB, name, value string) string {
	tb.Helper()
	out, err := rawClient(tb).CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name:         awsv2.String(name),
		SecretString: awsv2.String(value),
	})
	require.NoError(tb, err)
	return awsv2.ToString(out.VersionId)
}

// labelCurrentPending moves AWSPENDING onto the AWSCURRENT version of secret
// id, as AWS's own rotation functions leave a secret when they finish.
func labelCurrentPending(tb testing.TB, raw *secretsmanager.Client, id string) {
	tb.Helper()
	ctx := context.Background()
	d, err := raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(id)})
	require.NoError(tb, err)
	in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: awsv2.String(id), VersionStage: awsv2.String(labelPending)}
	for version, labels := range d.VersionIdsToStages {
		for _, l := range labels {
			switch l {
			case labelCurrent:
				in.MoveToVersionId = awsv2.String(version)
			case labelPending:
				in.RemoveFromVersionId = awsv2.String(version)
			}
		}
	}
	_, err = raw.UpdateSecretVersionStage(ctx, in)
	require.NoError(tb, err)
}
