package pgtest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
)

func TestEachTestGetsItsOwnDatabase(t *testing.T) {
	t.Parallel()

	a, b := pgtest.New(t), pgtest.New(t)
	require.NotEqual(t, a.Name, b.Name)

	ctx := context.Background()
	_, err := a.Pool.Exec(ctx, "CREATE TABLE only_in_a (x int)")
	require.NoError(t, err)

	var n int
	require.NoError(t, b.Pool.QueryRow(ctx,
		"SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n))
	require.Zero(t, n)
}
