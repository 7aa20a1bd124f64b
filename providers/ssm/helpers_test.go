package ssm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/mototest"
	"github.com/swarmkey/swarmkey/secret"
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
// store's back and for reading as a reader does.
func rawClient(tb testing.TB) *ssm.Client {
	tb.Helper()
	return ssm.NewFromConfig(mototest.Config(tb))
}

// prefix returns a random parameter path prefix ("/loadtest/t<hex>/"), so
// parallel tests never see each other's parameters.
func prefix(tb testing.TB) string { return "/" + mototest.Prefix(tb) }

func doc(password string) secret.Secret {
	return secret.FromString(fmt.Sprintf(`{"password":%q,"username":"loadtest"}`, password))
}

// readerPassword is what a reader's plain GetParameter of selector (NAME,
// NAME:N or NAME:LABEL) returns as the password, or "" when the read finds
// no parameter.
func readerPassword(tb testing.TB, selector string) string {
	tb.Helper()
	out, err := rawClient(tb).GetParameter(context.Background(), &ssm.GetParameterInput{Name: awsv2.String(selector), WithDecryption: awsv2.Bool(true)})
	if err != nil {
		require.True(tb, isCode(err, "ParameterNotFound", "ParameterVersionNotFound"), "%v", err)
		return ""
	}
	var d map[string]string
	require.NoError(tb, json.Unmarshal([]byte(awsv2.ToString(out.Parameter.Value)), &d))
	return d["password"]
}

// writePendingOnCurrent writes the pending parameter with the current
// version's token and document, as a promote that stopped before deleting
// it leaves things.
func writePendingOnCurrent(tb testing.TB, name string) {
	tb.Helper()
	ctx := context.Background()
	raw := rawClient(tb)
	h, err := raw.GetParameterHistory(ctx, &ssm.GetParameterHistoryInput{Name: awsv2.String(name), WithDecryption: awsv2.Bool(true)})
	require.NoError(tb, err)
	cur := h.Parameters[len(h.Parameters)-1]
	token := ""
	for _, l := range cur.Labels {
		if t, ok := strings.CutPrefix(l, labelTokenPrefix); ok {
			token = t
		}
	}
	require.NotEmpty(tb, token, "the current version carries swarmkey's token label")
	rec, err := json.Marshal(map[string]string{fieldToken: token, fieldDocument: awsv2.ToString(cur.Value)})
	require.NoError(tb, err)
	_, err = raw.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(DefaultPendingPrefix + name), Value: awsv2.String(string(rec)), Type: "SecureString", Overwrite: awsv2.Bool(true)})
	require.NoError(tb, err)
}
