package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// TestTargetsOpenedPerRotationShareAdminConnections: the daemon and
// `rotate --all` open a target per rotation. With AdminPools, the targets
// of one admin URL use one pool: the admin connection the first rotation
// opened serves the later ones, although each target was closed after its
// rotation; without, every target opens (and closes) its own. Closing the
// AdminPools closes the connection.
func TestTargetsOpenedPerRotationShareAdminConnections(t *testing.T) {
	t.Parallel()
	s := newSystem(t, plainNames, targets.Single)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	observer, err := pgx.Connect(ctx, s.db.URL)
	require.NoError(t, err)
	defer observer.Close(context.Background())
	// application_name marks this test's admin connections.
	adminConns := func(app string) (pids []int32) {
		rows, err := observer.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid`, app)
		require.NoError(t, err)
		pids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
		require.NoError(t, err)
		return pids
	}
	rotateWithFreshTargets := func(opts postgres.Options, app string) (seen [][]int32) {
		opts.Admin = secret.FromString(s.db.URL + "&application_name=" + app)
		for range 4 {
			tg, err := postgres.New(ctx, opts)
			require.NoError(t, err)
			pw := newPassword(t)
			resp, err := tg.Create(ctx, targets.CreateRequest{Token: "t", Strategy: targets.Single, Password: pw})
			require.NoError(t, err)
			require.NoError(t, tg.Apply(ctx, targets.ApplyRequest{Token: "t", Strategy: targets.Single, Pending: resp.Pending}))
			require.NoError(t, tg.Verify(ctx, targets.VerifyRequest{Credential: resp.Pending}))
			require.NoError(t, tg.Close())
			seen = append(seen, adminConns(app))
		}
		return seen
	}

	pools := postgres.NewAdminPools()
	shared := pgtest.RoleName(t, "swarmkey_shared")
	opts := s.options()
	opts.AdminPools = pools
	seen := rotateWithFreshTargets(opts, shared)
	for i, pids := range seen {
		require.Len(t, pids, 1, "after rotation %d: the shared pool keeps its one admin connection", i+1)
		require.Equal(t, seen[0], pids, "rotation %d opened a new admin connection", i+1)
	}
	pools.Close()
	require.Eventually(t, func() bool { return len(adminConns(shared)) == 0 }, 10*time.Second, 50*time.Millisecond,
		"closing the AdminPools closes its connections")
	_, err = postgres.New(ctx, opts)
	require.ErrorContains(t, err, "closed")

	own := pgtest.RoleName(t, "swarmkey_own")
	opts.AdminPools = nil
	rotateWithFreshTargets(opts, own)
	require.Eventually(t, func() bool { return len(adminConns(own)) == 0 }, 10*time.Second, 50*time.Millisecond,
		"a target with a pool of its own closes it")
}
