package postgres_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

func TestDocumentRoundTrip(t *testing.T) {
	t.Parallel()
	pw := secret.FromString(`p"a'ss\word`)
	doc := postgres.Document{Host: "127.0.0.1", Port: 5432, DBName: "app", Username: "checkout", Password: pw}
	s, err := doc.Secret()
	require.NoError(t, err)

	var raw map[string]any
	require.NoError(t, json.Unmarshal(s.Reveal(), &raw))
	require.Equal(t, map[string]any{
		"engine": "postgres", "host": "127.0.0.1", "port": float64(5432),
		"dbname": "app", "username": "checkout", "password": `p"a'ss\word`,
	}, raw, "RDS field names, port a JSON number")

	back, err := postgres.ParseDocument(s)
	require.NoError(t, err)
	require.Equal(t, doc, back)
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", back, back, back), "ss\\word")

	// AWS's extra fields are ignored.
	back, err = postgres.ParseDocument(secret.FromString(
		`{"engine":"aurora-postgresql","host":"h","port":5432,"username":"u","password":"p","dbClusterIdentifier":"c"}`))
	require.NoError(t, err)
	require.Equal(t, "u", back.Username)

	_, err = postgres.Document{Username: "u"}.Secret()
	require.ErrorContains(t, err, "password is empty")
	_, err = postgres.Document{Password: pw}.Secret()
	require.ErrorContains(t, err, "username is empty")
}

func TestParseDocumentErrorsNeverQuoteTheValue(t *testing.T) {
	t.Parallel()
	const pw = "Zq9xW2vK7"
	cases := map[string]string{
		"":                                       "is empty",
		"Zq9xW2vK7":                              "not valid JSON",
		`{"username":"u","password":"Zq9xW2vK7"`: "not valid JSON",
		`{"username":"u","password":Zq9xW2vK7}`:  "not valid JSON",
		`{"username":"u","password":123456789}`:  `field "password" must be a JSON string`,
		`{"username":"u","password":"p","port":"5432"}`: `field "port" must be a JSON number`,
		`{"username":"u","password":"p","port":5432.5}`: `field "port" must be a JSON number`,
		`["Zq9xW2vK7"]`:            "must be a JSON object",
		`"Zq9xW2vK7"`:              "must be a JSON object",
		`{"username":"u"}`:         "password is missing",
		`{"password":"Zq9xW2vK7"}`: "username is missing",
		`{"engine":"mysql","username":"u","password":"p"}`:         `engine "mysql"`,
		`{"username":"u","password":"p"} {"password":"Zq9xW2vK7"}`: "text after the JSON object",
		`{"username":"u","password":"p","port":70000}`:             "out of range",
	}
	for in, want := range cases {
		_, err := postgres.ParseDocument(secret.FromString(in))
		require.ErrorContains(t, err, want, "%s", in)
		require.NotContains(t, err.Error(), pw)
		require.NotContains(t, err.Error(), "123456789")
		require.NotContains(t, err.Error(), "5432")
	}
}
