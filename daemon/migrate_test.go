package daemon_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/internal/pgtest"
)

// Replicas started together each apply River's migrations to a fresh
// database at once: every one succeeds (unserialised, two of them run one
// migration twice and fail with "duplicate key").
func TestReplicasMigrateRiverTogether(t *testing.T) {
	t.Parallel()
	const replicas = 8
	pg := pgtest.New(t)
	pools := make([]*pgxpool.Pool, replicas)
	for i := range pools {
		pool, err := pgxpool.New(context.Background(), pg.URL)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		// Open the connections first, so the migrations start together.
		require.NoError(t, pool.Ping(context.Background()))
		pools[i] = pool
	}
	start := make(chan struct{})
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, pool := range pools {
		wg.Go(func() {
			<-start
			errs[i] = daemon.MigrateRiver(context.Background(), pool)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "replica %d", i)
	}
	var tables int
	require.NoError(t, pg.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_tables WHERE tablename IN ('river_job', 'river_leader', 'river_migration')`).Scan(&tables))
	require.Equal(t, 3, tables)
}
