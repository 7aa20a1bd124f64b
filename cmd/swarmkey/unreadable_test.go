package main_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// TestRotateReplaceUnreadableCurrent: a current version that is a bare
// password stops `rotate --local` with nothing changed and a hint;
// --replace-unreadable-current needs --local, needs the admin credential
// for single, and then replaces the version, audited as rotation.adopted
// with the operator's name and the version id.
func TestRotateReplaceUnreadableCurrent(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	ctx := context.Background()
	const bare = "bare-password-of-another-tool-1a2b3c"
	_, err := c.db.Pool.Exec(ctx, `ALTER ROLE `+pgx.Identifier{c.role}.Sanitize()+` PASSWORD '`+bare+`'`)
	require.NoError(t, err)
	const token = "0190b5a4-0000-7000-8000-0000000f0e19"
	store := c.fileStore()
	v, err := store.PutPending(ctx, "loadtest/checkout-db", token, secret.FromString(bare))
	require.NoError(t, err)
	require.NoError(t, store.Promote(ctx, "loadtest/checkout-db", providers.PromoteRequest{Token: token}))
	old := login{c.role, bare}
	require.True(t, c.logsIn(old))

	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, `secret "loadtest/checkout-db": current version `+v.ID+` is not a postgres document (`)
	require.Contains(t, r.stderr, `expected a JSON object with username "`+c.role+`" and password (engine, host, port, dbname optional); nothing was changed`)
	require.Contains(t, r.stdout, "swarmkey rotate checkout-db --local --replace-unreadable-current")
	require.True(t, c.logsIn(old), "the role's password is unchanged")

	r = c.run("rotate", "checkout-db", "--replace-unreadable-current")
	require.Equal(t, 2, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "--replace-unreadable-current needs --local")

	// single without the admin credential cannot change the password.
	good, err := os.ReadFile(c.config)
	require.NoError(t, err)
	c.write(c.config, strings.Replace(string(good), "\n        admin: env:PG_ADMIN_URL", "", 1))
	r = c.run("rotate", "checkout-db", "--local", "--replace-unreadable-current")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "without Admin the single strategy changes the role's password by logging in with the current credential")
	require.True(t, c.logsIn(old), "the role's password is unchanged")
	c.write(c.config, string(good))

	r = c.run("rotate", "checkout-db", "--local", "--replace-unreadable-current")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "replaced the unreadable current version "+v.ID)
	current, ok := c.stage(providers.StageCurrent)
	require.True(t, ok)
	require.True(t, c.logsIn(current))
	require.False(t, c.logsIn(old), "the replaced password no longer logs in")

	rows, err := c.db.Pool.Query(ctx, `SELECT actor, detail->>'replaced_version' FROM audit_log WHERE action = 'rotation.adopted' ORDER BY id`)
	require.NoError(t, err)
	adopted, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var actor, version string
		err := row.Scan(&actor, &version)
		return actor + " " + version, err
	})
	require.NoError(t, err)
	require.Len(t, adopted, 1, "the attempt without admin replaced nothing")
	require.Regexp(t, `^operator:\S+ `+v.ID+`$`, adopted[0])

	r = c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	c.requireNoLeak(bare, current.Password)
}
