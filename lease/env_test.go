package lease_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/secret"
)

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"checkout-db": "CHECKOUT_DB",
		"api_key":     "API_KEY",
		"reports.v2":  "REPORTS_V2",
		"2fa":         "_2FA",
		"":            "",
	} {
		require.Equal(t, want, lease.EnvName(in), in)
	}
}

func TestParsePolicies(t *testing.T) {
	got, err := lease.ParsePolicies([]string{"checkout-db", "reports-api=REPORTS", "9lives"})
	require.NoError(t, err)
	require.Equal(t, []lease.Policy{
		{Name: "checkout-db", Prefix: "CHECKOUT_DB"},
		{Name: "reports-api", Prefix: "REPORTS"},
		{Name: "9lives", Prefix: "_9LIVES"},
	}, got)
	require.Equal(t, []string{"checkout-db", "reports-api", "9lives"}, lease.Names(got))

	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "--policy is required: the policies whose credentials the command gets"},
		{[]string{"=X"}, `--policy "=X": give a policy name, as NAME or NAME=PREFIX`},
		{[]string{"a=1X"}, `--policy "a=1X": the prefix "1X" is not a variable name: use letters, digits and _, not starting with a digit`},
		{[]string{"a="}, `--policy "a=": the prefix "" is not a variable name: use letters, digits and _, not starting with a digit`},
		{[]string{"a", "a=B"}, `--policy "a=B": the policy is given twice`},
	} {
		_, err := lease.ParsePolicies(tc.flags)
		var input *lease.InputError
		require.ErrorAs(t, err, &input, "%v", tc.flags)
		require.EqualError(t, err, tc.want)
	}
}

func TestParseMappings(t *testing.T) {
	policies := []lease.Policy{{Name: "checkout-db", Prefix: "CHECKOUT_DB"}}
	got, err := lease.ParseMappings([]string{"password=PGPASSWORD", "checkout-db:host="}, policies)
	require.NoError(t, err)
	require.Equal(t, []lease.Mapping{
		{Field: "password", Variable: "PGPASSWORD"},
		{Policy: "checkout-db", Field: "host"},
	}, got)

	for rule, want := range map[string]string{
		"password":        `--env-map "password": use FIELD=VAR or POLICY:FIELD=VAR (FIELD= leaves the field out)`,
		"=X":              `--env-map "=X": use FIELD=VAR or POLICY:FIELD=VAR (FIELD= leaves the field out)`,
		"password=1PW":    `--env-map "password=1PW": "1PW" is not a variable name: use letters, digits and _, not starting with a digit`,
		"nosuch:f=X":      `--env-map "nosuch:f=X": policy "nosuch" is not one of the --policy flags`,
		"a:b:c=X":         `--env-map "a:b:c=X": policy "a" is not one of the --policy flags`,
		"password=PG-PWD": `--env-map "password=PG-PWD": "PG-PWD" is not a variable name: use letters, digits and _, not starting with a digit`,
	} {
		_, err := lease.ParseMappings([]string{rule}, policies)
		var input *lease.InputError
		require.ErrorAs(t, err, &input, rule)
		require.EqualError(t, err, want)
	}
}

// readEnv reads creds under a fake lease with the given flags.
func readEnv(t *testing.T, creds map[string]map[string]string, policyFlags, envMap []string) (map[string]string, error) {
	t.Helper()
	policies, err := lease.ParsePolicies(policyFlags)
	require.NoError(t, err)
	maps, err := lease.ParseMappings(envMap, policies)
	require.NoError(t, err)
	held, err := lease.Take(context.Background(), &fakeSource{creds: creds}, lease.Request{TTL: time.Minute}, func(string) {})
	require.NoError(t, err)
	env, err := held.ReadEnv(context.Background(), policies, maps)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range env {
		out[k] = v.RevealString()
	}
	return out, nil
}

func TestReadEnvMapsFieldsToVariables(t *testing.T) {
	creds := map[string]map[string]string{
		"checkout-db": {"username": "u1", "password": "pw-1", "host": "db", "port": "5432"},
		"reports-api": {"api_key": "k-1"},
	}
	env, err := readEnv(t, creds, []string{"checkout-db", "reports-api"}, nil)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"CHECKOUT_DB_USERNAME": "u1", "CHECKOUT_DB_PASSWORD": "pw-1", "CHECKOUT_DB_HOST": "db", "CHECKOUT_DB_PORT": "5432",
		"REPORTS_API_API_KEY": "k-1",
		"SWARMKEY_LEASE_ID":   "lease-1",
		"SWARMKEY_POLICIES":   "checkout-db=CHECKOUT_DB,reports-api=REPORTS_API",
	}, env)

	// A chosen prefix, a field mapped for every policy, one dropped for one.
	env, err = readEnv(t, creds, []string{"checkout-db=PG", "reports-api"},
		[]string{"password=PGPASSWORD", "checkout-db:host=", "api_key=REPORTS_KEY"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"PG_USERNAME": "u1", "PGPASSWORD": "pw-1", "PG_PORT": "5432",
		"REPORTS_KEY":       "k-1",
		"SWARMKEY_LEASE_ID": "lease-1",
		"SWARMKEY_POLICIES": "checkout-db=PG,reports-api=REPORTS_API",
	}, env)

	// The last rule that matches a field wins.
	env, err = readEnv(t, creds, []string{"reports-api"}, []string{"api_key=A", "reports-api:api_key=B"})
	require.NoError(t, err)
	require.Equal(t, "k-1", env["B"])
	require.NotContains(t, env, "A")
}

func TestReadEnvRefusesCollisionsAndUnusedMappings(t *testing.T) {
	creds := map[string]map[string]string{
		"checkout-db": {"username": "u1", "password": "pw-1"},
		"other":       {"password": "pw-2"},
	}
	for _, tc := range []struct {
		policies, maps []string
		want           string
	}{
		{[]string{"checkout-db"}, []string{"username=CHECKOUT_DB_PASSWORD"},
			`field "password" of policy "checkout-db" and field "username" of policy "checkout-db" would both set CHECKOUT_DB_PASSWORD: choose another prefix (--policy NAME=PREFIX) or --env-map`},
		{[]string{"checkout-db", "other=CHECKOUT_DB"}, nil,
			`field "password" of policy "checkout-db" and field "password" of policy "other" would both set CHECKOUT_DB_PASSWORD: choose another prefix (--policy NAME=PREFIX) or --env-map`},
		{[]string{"checkout-db"}, []string{"password=SWARMKEY_LEASE_ID"},
			`exec itself and field "password" of policy "checkout-db" would both set SWARMKEY_LEASE_ID: choose another prefix (--policy NAME=PREFIX) or --env-map`},
		{[]string{"checkout-db"}, []string{"nosuchfield=X"}, `--env-map: no policy given has a field "nosuchfield"`},
		{[]string{"checkout-db", "other=O"}, []string{"other:username=X"}, `--env-map: no policy given has a field "username" (policy other)`},
	} {
		_, err := readEnv(t, creds, tc.policies, tc.maps)
		var input *lease.InputError
		require.ErrorAs(t, err, &input, tc.want)
		require.EqualError(t, err, tc.want)
		require.NotContains(t, err.Error(), "pw-")
	}
}

func TestChildEnvReplacesOnlyTheVariablesSet(t *testing.T) {
	base := []string{"PATH=/bin", "CHECKOUT_DB_PASSWORD=stale", "HOME=/home/me", "EMPTY=", "SWARMKEY_LEASE_ID=old"}
	got := lease.ChildEnv(base, lease.Withhold{Nothing: true}, map[string]secret.Secret{
		"CHECKOUT_DB_PASSWORD": secret.FromString("pw=with=equals"),
		"SWARMKEY_LEASE_ID":    secret.FromString("lease-9"),
		"CHECKOUT_DB_HOST":     {},
	})
	require.Equal(t, []string{"PATH=/bin", "HOME=/home/me", "EMPTY="}, got[:3], "the rest of the environment, in order")
	rest := slices.Sorted(slices.Values(got[3:]))
	require.Equal(t, []string{"CHECKOUT_DB_HOST=", "CHECKOUT_DB_PASSWORD=pw=with=equals", "SWARMKEY_LEASE_ID=lease-9"}, rest)
}

func TestChildEnvWithholdsSwarmkeysOwnAndReferencedVariables(t *testing.T) {
	base := []string{"PATH=/bin", "HOME=/home/me", "LOCUST_HOST=http://x", "SWARMKEY_DATABASE_URL=postgres://u:pw@db/x",
		"SWARMKEY_CONFIG=/etc/s.yaml", "SWARMKEY_LEASE_ID=stale", "PG_ADMIN_URL=postgres://admin:pw@db/x", "KEYS_TOKEN=t0k",
		"PG_ADMIN_URL_NOT=kept", "swarmkey_lower=kept"}
	set := map[string]secret.Secret{"SWARMKEY_LEASE_ID": secret.FromString("lease-9"), "SWARMKEY_POLICIES": secret.FromString("a=A")}
	names := func(env []string) []string {
		var out []string
		for _, kv := range env {
			name, _, _ := strings.Cut(kv, "=")
			out = append(out, name)
		}
		slices.Sort(out)
		return out
	}
	referenced := []string{"PG_ADMIN_URL", "KEYS_TOKEN"}

	got := lease.ChildEnv(base, lease.Withhold{Referenced: referenced}, set)
	require.Equal(t, []string{"HOME", "LOCUST_HOST", "PATH", "PG_ADMIN_URL_NOT", "SWARMKEY_LEASE_ID", "SWARMKEY_POLICIES", "swarmkey_lower"}, names(got))
	require.Contains(t, got, "SWARMKEY_LEASE_ID=lease-9", "exec's own, not the inherited one")

	got = lease.ChildEnv(base, lease.Withhold{Referenced: referenced, Pass: []string{"PG_ADMIN_URL", "SWARMKEY_CONFIG"}}, set)
	require.Equal(t, []string{"HOME", "LOCUST_HOST", "PATH", "PG_ADMIN_URL", "PG_ADMIN_URL_NOT", "SWARMKEY_CONFIG", "SWARMKEY_LEASE_ID",
		"SWARMKEY_POLICIES", "swarmkey_lower"}, names(got))

	got = lease.ChildEnv(base, lease.Withhold{Referenced: referenced, Nothing: true}, set)
	require.Len(t, got, len(base)+1, "everything, SWARMKEY_LEASE_ID replaced, SWARMKEY_POLICIES added")
	require.Contains(t, got, "SWARMKEY_DATABASE_URL=postgres://u:pw@db/x")
	require.Contains(t, got, "SWARMKEY_LEASE_ID=lease-9")
}

func TestParsePassEnv(t *testing.T) {
	got, err := lease.ParsePassEnv([]string{"PG_ADMIN_URL", "_X1"})
	require.NoError(t, err)
	require.Equal(t, []string{"PG_ADMIN_URL", "_X1"}, got)
	for _, bad := range []string{"", "1X", "A=B", "A,B"} {
		_, err := lease.ParsePassEnv([]string{bad})
		var input *lease.InputError
		require.ErrorAs(t, err, &input, bad)
		require.ErrorContains(t, err, "--pass-env")
	}
}
