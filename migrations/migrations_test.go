package migrations

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
)

// The audit log as text, oldest first: what a migration must keep.
func auditDump(t *testing.T, pg *pgtest.Database) string {
	t.Helper()
	var dump string
	require.NoError(t, pg.Pool.QueryRow(context.Background(),
		`SELECT coalesce(json_agg(a ORDER BY id)::text, '') FROM audit_log a`).Scan(&dump))
	return dump
}

// requireAppendOnly checks that UPDATE, DELETE and TRUNCATE of each table
// (which holds rows: row triggers fire only for rows) are refused by the
// triggers.
func requireAppendOnly(t *testing.T, pg *pgtest.Database, tables ...string) {
	t.Helper()
	for _, table := range tables {
		var n int
		require.NoError(t, pg.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
		require.NotZero(t, n, "%s holds no row to refuse changes of", table)
		for _, sql := range []string{
			`UPDATE ` + table + ` SET actor = 'someone-else'`,
			`DELETE FROM ` + table,
			`TRUNCATE ` + table,
		} {
			_, err := pg.Pool.Exec(context.Background(), sql)
			require.ErrorContains(t, err, "append-only", sql)
		}
	}
}

// 00006 turns audit_log into a partitioned table without losing a row, an
// id or the append-only rule, and its Down turns it back, again keeping
// every row.
func TestAuditPartitioningKeepsRowsAndTheAppendOnlyRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := pgtest.New(t)
	db := stdlib.OpenDBFromPool(pg.Pool)
	t.Cleanup(func() { db.Close() })
	provider, err := newProvider(db)
	require.NoError(t, err)
	_, err = provider.UpTo(ctx, 5)
	require.NoError(t, err)

	// Rows of long ago, of now, and one a clock ahead wrote next month.
	_, err = pg.Pool.Exec(ctx, `
		INSERT INTO audit_log (at, actor, policy, action, detail) VALUES
			('2024-11-03T10:00:00Z', 'daemon', 'checkout-db', 'rotation.started', '{"step":"create"}'),
			('2025-01-15T23:59:59Z', 'token:ci', 'checkout-db', 'credential.read', '{"version":"3"}'),
			(now(), 'operator:alice', NULL, 'token.added', '{"token":"ci"}'),
			(now() + interval '40 days', 'daemon', 'billing', 'rotation.succeeded', '{}')`)
	require.NoError(t, err)
	before := auditDump(t, pg)
	var maxID int64
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT max(id) FROM audit_log`).Scan(&maxID))

	_, err = provider.Up(ctx)
	require.NoError(t, err)

	require.Equal(t, before, auditDump(t, pg), "every row, with its id, is kept")
	var kind string
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'audit_log'::regclass`).Scan(&kind))
	require.Equal(t, "p", kind, "audit_log is partitioned")

	// The old table is the legacy partition, up to the month after its
	// newest row; the month after that has a partition ahead.
	type part struct {
		name     string
		from, to *time.Time
	}
	parts := func() []part {
		rows, err := pg.Pool.Query(ctx, `SELECT partition, from_at, to_at FROM swarmkey_audit_partitions ORDER BY to_at`)
		require.NoError(t, err)
		defer rows.Close()
		var out []part
		for rows.Next() {
			var p part
			require.NoError(t, rows.Scan(&p.name, &p.from, &p.to))
			out = append(out, p)
		}
		require.NoError(t, rows.Err())
		return out
	}
	got := parts()
	require.NotEmpty(t, got)
	require.Equal(t, "audit_log_legacy", got[0].name)
	require.Nil(t, got[0].from, "the legacy partition holds everything before its end")
	ahead := time.Now().UTC().AddDate(0, 0, 40)
	legacyEnd := time.Date(ahead.Year(), ahead.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	require.True(t, legacyEnd.Equal(*got[0].to), "legacy ends %s, want %s", got[0].to, legacyEnd)

	// New rows continue the ids, land in their month's partition, and a
	// month after the legacy one gets its own partition when written to.
	var id int64
	var where string
	_, err = pg.Pool.Exec(ctx, `SELECT swarmkey_ensure_audit_partition($1)`, legacyEnd)
	require.NoError(t, err)
	require.NoError(t, pg.Pool.QueryRow(ctx, `
		INSERT INTO audit_log (at, actor, action) VALUES ($1, 'daemon', 'rotation.started')
		RETURNING id, tableoid::regclass::text`, legacyEnd.Add(time.Hour)).Scan(&id, &where))
	require.Greater(t, id, maxID)
	require.Equal(t, "audit_log_p"+legacyEnd.Format("2006_01"), where)
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM audit_log WHERE at < '2025-01-01'`).Scan(&where))
	require.Equal(t, "audit_log_legacy", where)

	requireAppendOnly(t, pg, "audit_log", "audit_log_legacy", "audit_log_p"+legacyEnd.Format("2006_01"))
	after := auditDump(t, pg)

	// Down: one table again, every row kept, still append-only.
	_, err = provider.DownTo(ctx, 5)
	require.NoError(t, err)
	require.Equal(t, after, auditDump(t, pg))
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'audit_log'::regclass`).Scan(&kind))
	require.Equal(t, "r", kind)
	requireAppendOnly(t, pg, "audit_log")
	_, err = provider.Up(ctx)
	require.NoError(t, err, "and up again")
	require.Equal(t, after, auditDump(t, pg))
}

// A new database has no legacy partition: every month, old or new, gets
// its own, created by swarmkey_ensure_audit_partition with the next month's.
func TestNewDatabaseHasMonthlyAuditPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := pgtest.New(t)
	db := stdlib.OpenDBFromPool(pg.Pool)
	t.Cleanup(func() { db.Close() })
	_, err := Up(ctx, db)
	require.NoError(t, err)

	_, err = pg.Pool.Exec(ctx, `SELECT swarmkey_ensure_audit_partition('2025-01-10T00:00:00Z')`)
	require.NoError(t, err)
	rows, err := pg.Pool.Query(ctx, `SELECT partition, from_at, to_at FROM swarmkey_audit_partitions ORDER BY to_at`)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var name string
		var from, to time.Time
		require.NoError(t, rows.Scan(&name, &from, &to))
		require.Equal(t, "audit_log_p"+from.UTC().Format("2006_01"), name)
		require.True(t, from.UTC().AddDate(0, 1, 0).Equal(to), "%s: one month", name)
		names = append(names, name)
	}
	require.NoError(t, rows.Err())
	_, err = pg.Pool.Exec(ctx, `INSERT INTO audit_log (at, actor, action) VALUES ('2025-01-10T00:00:00Z', 'daemon', 'rotation.started')`)
	require.NoError(t, err)
	now := time.Now().UTC()
	require.Equal(t, []string{"audit_log_p2025_01", "audit_log_p2025_02",
		"audit_log_p" + now.Format("2006_01"), "audit_log_p" + now.AddDate(0, 0, -now.Day()+1).AddDate(0, 1, 0).Format("2006_01")}, names)
	requireAppendOnly(t, pg, "audit_log", "audit_log_p2025_01")
}
