package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoadRoleClaimedTwice: two policies on one server (host and port;
// roles are server-wide, so dbname does not matter) may not claim one role
// as username, alternate_username (given or the default <username>_b) or
// group_role, except one group_role for both; each error names the other
// policy's file and line.
func TestLoadRoleClaimedTwice(t *testing.T) {
	t.Parallel()

	_, err := Load("testdata/roles/main.yaml")
	requireErrors(t, err,
		`testdata/roles/main.yaml:16: policies[orders-single].target.postgres.username: role "orders_b" (username) on server db.internal:5432 is already claimed by policy "orders" (the default alternate_username) at testdata/roles/main.yaml:6; a policy may not take over a role another policy owns: give each policy its own roles`,
		`testdata/roles/main.yaml:25: policies[other-database].target.postgres.username: role "orders" (username) on server db.internal:5432 is already claimed by policy "orders" (username) at testdata/roles/main.yaml:6`,
		`testdata/roles/more.yaml:8: policies[into-orders].target.postgres.group_role: role "orders" (group_role) on server db.internal:5432 is already claimed by policy "orders" (username) at testdata/roles/main.yaml:6`,
		`testdata/roles/more.yaml:17: policies[group-as-login].target.postgres.alternate_username: role "orders_rw" (alternate_username) on server db.internal:5432 is already claimed by policy "orders" (group_role) at testdata/roles/main.yaml:6`,
		`testdata/roles/more.yaml:32: policies[payments-pair].target.postgres.username: role "payments_b" (the default alternate_username) on server db.internal:5432 is already claimed by policy "payments" (username) at testdata/roles/more.yaml:25`,
	)
}

// TestLoadPostgresAllowOptions: the two opt-outs of the postgres target's
// safety rules are policy keys that reach its Options.
func TestLoadPostgresAllowOptions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "swarmkey.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`database: env:DB
stores:
  file: { dir: /s, key_file: /k }
policies:
  - name: legacy
    strategy: single
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: app, allow_insecure_auth: true, allow_privileged: true }
  - name: strict
    strategy: single
    schedule: "@daily"
    target:
      postgres: { host: db, dbname: app, username: other }
`), 0o600))
	cfg, err := Load(path)
	require.NoError(t, err)
	legacy, ok := cfg.Policy("legacy")
	require.True(t, ok)
	require.True(t, legacy.Target.Postgres.Options.AllowInsecureAuth)
	require.True(t, legacy.Target.Postgres.Options.AllowPrivileged)
	strict, ok := cfg.Policy("strict")
	require.True(t, ok)
	require.False(t, strict.Target.Postgres.Options.AllowInsecureAuth)
	require.False(t, strict.Target.Postgres.Options.AllowPrivileged)
}
