package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/generated"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// newRuntime loads policy text, with a file store in a temporary folder.
func newRuntime(t *testing.T, text string) *Runtime {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, file.GenerateKey(filepath.Join(dir, "secrets.key")))
	path := filepath.Join(dir, "swarmkey.yaml")
	require.NoError(t, os.WriteFile(path, []byte("database: env:SWARMKEY_DATABASE_URL\n"+text), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	rt := NewRuntime(cfg, nil)
	t.Cleanup(rt.Close)
	return rt
}

const fileStore = "stores:\n  file: { dir: secrets, key_file: secrets.key }\n"

// TestOpenCredential: the target and the rotation settings come from the
// policy as config decoded it; references are resolved at open time only.
func TestOpenCredential(t *testing.T) {
	t.Setenv("SWARMKEY_TEST_PG_ADMIN", "postgres://admin:pw@127.0.0.1:5432/app")
	rt := newRuntime(t, fileStore+`policies:
  - name: shared
    schedule: "@daily"
    password: { length: 40, alphabet: hex }
    grace: 10m
    canary: { attempts: 2, interval: 3s }
    target:
      generated: { field: token }
  - name: pg
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: app, group_role: app_rw, admin: env:SWARMKEY_TEST_PG_ADMIN }
  - name: pg-unset
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: other, group_role: app_rw, admin: env:SWARMKEY_TEST_UNSET }
`)
	ctx := context.Background()
	c, err := rt.Credential(ctx, "shared")
	require.NoError(t, err)
	defer c.Target.Close()
	require.IsType(t, &generated.Target{}, c.Target)
	require.Equal(t, "shared", c.SecretID)
	require.Equal(t, targets.Alternating, c.Strategy)
	require.Equal(t, rotator.PasswordRules{Length: 40, Characters: "0123456789abcdef"}, c.Password)
	require.Equal(t, 10*time.Minute, c.Grace)
	require.Equal(t, rotator.CanaryRetry{Attempts: 2, Interval: 3 * time.Second}, c.Canary)
	require.False(t, c.DestroyRetired)

	pg, err := rt.Credential(ctx, "pg")
	require.NoError(t, err)
	defer pg.Target.Close()
	require.IsType(t, &postgres.Target{}, pg.Target)

	_, err = rt.Credential(ctx, "pg-unset")
	require.ErrorContains(t, err, "target.postgres.admin: reference env:SWARMKEY_TEST_UNSET: the environment variable is unset or empty")
}

// TestStoreOpenersTakeEveryOption: a store opens from its Options as
// decoded, keys that used to be unreachable included (the AWS profile here,
// which the SDK looks up first).
func TestStoreOpenersTakeEveryOption(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	rt := newRuntime(t, fileStore+"  aws: { region: eu-west-1, profile: swarmkey-no-such-profile }\n")
	_, err := rt.Store(context.Background(), config.ProviderAWS)
	require.ErrorContains(t, err, `open store "aws": aws: load SDK configuration (profile "swarmkey-no-such-profile")`)

	s, err := rt.Store(context.Background(), config.ProviderFile)
	require.NoError(t, err)
	require.Equal(t, "file", s.Name())
}

// TestPolicySet: the daemon gets each policy's Timing and the global deny
// windows as config built them.
func TestPolicySet(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, fileStore+`deny:
  - { name: freeze, cron: "0 0 * * 5", duration: 72h, timezone: Europe/Berlin }
policies:
  - name: shared
    schedule: "0 3 * * *"
    timezone: Europe/Berlin
    window: 2h
    max_attempts: 7
    tags: [checkout]
    deny:
      - { cron: "0 9 * * 1-5", duration: 9h }
    target:
      generated: {}
`)
	set := rt.PolicySet()
	require.Len(t, set.Deny, 1)
	require.Equal(t, rt.Config.Deny[0].DenyWindow, set.Deny[0])
	s := set.Policies["shared"]
	p := rt.Config.Policies[0]
	require.Equal(t, p.Timing, *s.Plan)
	require.Equal(t, "0 3 * * * Europe/Berlin", s.Plan.Schedule.String())
	require.Equal(t, 2*time.Hour, s.Plan.Window)
	require.Len(t, s.Plan.Deny, 1)
	require.Equal(t, "alternating", s.Strategy)
	require.Equal(t, "file", s.Store)
	require.Equal(t, "shared", s.SecretID)
	require.Equal(t, []string{"checkout"}, s.Tags)
	require.Equal(t, 7, s.MaxAttempts)
	require.NoError(t, s.Plan.Validate())
}

// TestUnresolvableReferencesAreInputErrors: a reference that does not
// resolve is bad input (exit 2); a store that fails to answer is not.
func TestUnresolvableReferencesAreInputErrors(t *testing.T) {
	t.Setenv("SWARMKEY_TEST_PG_ADMIN", "")
	rt := newRuntime(t, fileStore+`policies:
  - name: env-unset
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: a, group_role: app_rw, admin: env:SWARMKEY_TEST_PG_ADMIN }
  - name: file-missing
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: b, group_role: app_rw, admin: file:/nonexistent/swarmkey-admin-url }
  - name: secret-missing
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: c, group_role: app_rw, admin: store:file/no/such/secret }
`)
	ctx := context.Background()
	for _, name := range []string{"env-unset", "file-missing", "secret-missing"} {
		_, err := rt.Credential(ctx, name)
		var input *InputError
		require.ErrorAs(t, err, &input, name)
		require.ErrorContains(t, err, "target.postgres.admin: reference ", name)
	}

	// The database's reference, before anything is connected.
	t.Setenv("SWARMKEY_DATABASE_URL", "")
	_, err := Open(ctx, rt)
	var input *InputError
	require.ErrorAs(t, err, &input)
	require.ErrorContains(t, err, "database: reference env:SWARMKEY_DATABASE_URL: the environment variable is unset or empty")

	// A store that cannot be opened is not the reference's fault.
	require.NoError(t, os.Chmod(filepath.Join(filepath.Dir(rt.Config.Files[0]), "secrets.key"), 0o644))
	fresh := NewRuntime(rt.Config, nil) // rt has the store open already
	defer fresh.Close()
	_, err = fresh.Credential(ctx, "secret-missing")
	require.ErrorContains(t, err, "chmod 600")
	require.False(t, errors.As(err, &input), "a store that refuses to open is not bad input: %v", err)
}
