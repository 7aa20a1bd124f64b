package main_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
)

// TestResolveAPendingVersionSwarmkeyDidNotWrite: a pending version that no
// rotation recorded (another tool, by hand) makes rotate refuse and name
// the command; resolve with bad input exits 2 and changes nothing; a
// promote whose canary fails exits 1 and changes nothing; a discard and a
// promote that passes its canary exit 0 and are audited with the operator;
// then rotations go on.
func TestResolveAPendingVersionSwarmkeyDidNotWrite(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	before, _ := c.stage(providers.StageCurrent)
	ctx := context.Background()

	putForeign := func(password string) string {
		t.Helper()
		token := uuid.NewString()
		doc := fmt.Sprintf(`{"engine":"postgres","username":%q,"password":%q}`, c.role, password)
		_, err := c.fileStore().PutPending(ctx, "loadtest/checkout-db", token, secret.FromString(doc))
		require.NoError(t, err)
		return token
	}
	pendingID := func() string {
		t.Helper()
		v, err := c.fileStore().Get(ctx, "loadtest/checkout-db", providers.StagePending)
		if err != nil {
			return ""
		}
		return v.ID
	}

	wrong := "wrong-" + uuid.NewString()
	version := putForeign(wrong)
	r = c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, version)
	require.Contains(t, r.stderr, "swarmkey resolve checkout-db --promote-pending")
	require.Equal(t, version, pendingID(), "the refusal changed nothing")
	r = c.run("status")
	require.Contains(t, r.stdout, "refused")

	for _, args := range [][]string{
		{"resolve", "checkout-db"},
		{"resolve", "checkout-db", "--discard-pending", "--promote-pending"},
		{"resolve", "no-such-policy", "--discard-pending"},
		{"resolve", "--discard-pending"},
	} {
		r = c.run(args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.Equal(t, version, pendingID(), "%v changed nothing", args)
	}
	require.Contains(t, c.run("resolve", "no-such-policy", "--discard-pending").stderr, `unknown policy "no-such-policy"`)

	r = c.run("resolve", "checkout-db", "--promote-pending")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "canary")
	require.Contains(t, r.stderr, "nothing was changed")
	require.Equal(t, version, pendingID())
	current, _ := c.stage(providers.StageCurrent)
	require.Equal(t, before, current)

	r = c.run("resolve", "checkout-db", "--discard-pending")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "discarded pending version "+version)
	require.Empty(t, pendingID())
	r = c.run("resolve", "checkout-db", "--discard-pending")
	require.Equal(t, 2, r.code, "nothing left to resolve")
	require.Contains(t, r.stderr, "no pending version")

	// Another tool changed the role's password and wrote it as pending:
	// its canary passes, so it may be promoted.
	works := "works-" + uuid.NewString()
	version = putForeign(works)
	_, err := c.db.Pool.Exec(ctx, `ALTER ROLE `+pgx.Identifier{c.role}.Sanitize()+` PASSWORD '`+works+`'`)
	require.NoError(t, err)
	r = c.run("resolve", "checkout-db", "--promote-pending")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "promoted pending version "+version)
	current, _ = c.stage(providers.StageCurrent)
	require.Equal(t, works, current.Password)
	require.True(t, c.logsIn(current))

	entries, err := c.stateDB(t).Audit(ctx, "checkout-db", 100)
	require.NoError(t, err)
	var resolved []string
	for _, e := range entries {
		if e.Action == "rotation.resolved" {
			require.Equal(t, operator(t), e.Actor)
			resolved = append(resolved, fmt.Sprint(e.Detail["action"]))
		}
	}
	require.Equal(t, []string{"discard-pending", "promote-pending"}, resolved)

	r = c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	current, _ = c.stage(providers.StageCurrent)
	require.True(t, c.logsIn(current))
	c.requireNoLeak(wrong, works, current.Password, before.Password)
}
