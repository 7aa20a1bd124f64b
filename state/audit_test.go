package state_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/state"
)

// clockDB is a migrated state database whose clock the test sets.
type clockDB struct {
	*state.DB
	pg  *pgtest.Database
	now time.Time
}

func newClockDB(t *testing.T) *clockDB {
	t.Helper()
	ctx := context.Background()
	c := &clockDB{pg: pgtest.New(t), now: time.Now().UTC()}
	pool, err := state.Connect(ctx, c.pg.URL)
	require.NoError(t, err)
	c.DB = state.NewFromPool(pool, state.Options{Now: func() time.Time { return c.now }})
	t.Cleanup(c.Close)
	_, err = c.Migrate(ctx)
	require.NoError(t, err)
	return c
}

func (c *clockDB) append(t *testing.T, at time.Time, action string) {
	t.Helper()
	c.now = at
	require.NoError(t, c.AppendAudit(context.Background(), state.AuditEntry{Actor: "daemon", Policy: "checkout-db", Action: action,
		Detail: map[string]any{"at": at.Format(time.RFC3339)}}))
}

// role creates a login role for this test (dropped at its end) and returns a
// connection to the test database as that role.
func (c *clockDB) role(t *testing.T, prefix string, grants ...string) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	name := pgtest.RoleName(t, prefix)
	_, err := c.pg.Pool.Exec(ctx, `CREATE ROLE `+pgx.Identifier{name}.Sanitize()+` LOGIN`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = c.pg.Pool.Exec(context.Background(), `DROP OWNED BY `+pgx.Identifier{name}.Sanitize())
		_, _ = c.pg.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+pgx.Identifier{name}.Sanitize())
	})
	for _, g := range grants {
		_, err := c.pg.Pool.Exec(ctx, g+` TO `+pgx.Identifier{name}.Sanitize())
		require.NoError(t, err, g)
	}
	// The test server trusts its socket's connections, whoever they claim
	// to be: no password is involved.
	u, err := url.Parse(c.pg.URL)
	require.NoError(t, err)
	u.User = url.User(name)
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return name, conn
}

func (c *clockDB) partitions(t *testing.T) []string {
	t.Helper()
	rows, err := c.pg.Pool.Query(context.Background(), `SELECT partition FROM swarmkey_audit_partitions ORDER BY to_at`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func (c *clockDB) export(t *testing.T, before time.Time) []state.ExportedEntry {
	t.Helper()
	var out []state.ExportedEntry
	_, err := c.ExportAudit(context.Background(), before, func(e state.ExportedEntry) error {
		out = append(out, e)
		return nil
	})
	require.NoError(t, err)
	return out
}

// Old months are exported, then dropped whole through
// swarmkey_drop_audit_partition by the role an operator granted it to; the
// drop is audited, refused for a month that is too new or not exported, and
// for anyone else. An application role with every privilege on the tables
// still cannot update, delete or truncate an entry, on the parent or on a
// partition.
func TestAuditRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClockDB(t)
	jan := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	c.append(t, jan, "rotation.started")
	c.append(t, jan.AddDate(0, 0, 21).Add(11*time.Hour+59*time.Minute), "rotation.succeeded") // 2025-01-31T23:59Z
	c.append(t, time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), "rotation.started")
	c.append(t, time.Now().UTC(), "token.added")
	c.now = time.Now().UTC()
	require.Contains(t, c.partitions(t), "audit_log_p2025_01")

	// The export: exactly the entries before its bound, oldest first.
	feb := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	old := c.export(t, feb)
	require.Len(t, old, 2)
	require.Equal(t, "rotation.started", old[0].Action)
	require.True(t, old[0].At.Equal(jan))
	require.Equal(t, "rotation.succeeded", old[1].Action)
	require.JSONEq(t, `{"at":"2025-01-31T23:59:00Z"}`, string(old[1].Detail))
	require.Len(t, c.export(t, feb.Add(time.Microsecond)), 3)

	adminRole, admin := c.role(t, "audit_admin", `GRANT EXECUTE ON FUNCTION swarmkey_drop_audit_partition(date)`)
	drop := func(conn *pgx.Conn, month string) (string, error) {
		var dropped string
		err := conn.QueryRow(ctx, `SELECT swarmkey_drop_audit_partition($1)`, month).Scan(&dropped)
		return dropped, err
	}

	// Not exported yet: refused, nothing dropped.
	_, err := drop(admin, "2025-01-01")
	require.ErrorContains(t, err, "was not exported: run `swarmkey audit export --before 2025-02-01T00:00:00Z` first")
	require.NoError(t, c.AppendAudit(ctx, state.AuditEntry{Actor: "operator:test", Action: "audit.exported",
		Detail: map[string]any{"before": feb.Format(time.RFC3339Nano), "entries": len(old)}}))
	// February is past the export's bound; this month is too new.
	_, err = drop(admin, "2025-02-14")
	require.ErrorContains(t, err, "audit_log_p2025_02 (entries before 2025-03-01 00:00:00+00) was not exported")
	_, err = drop(admin, time.Now().UTC().Format("2006-01-02"))
	require.ErrorContains(t, err, "less than 90 days ago: refused")
	_, err = drop(admin, "2019-06-01")
	require.ErrorContains(t, err, "no audit_log partition holds 2019-06")

	dropped, err := drop(admin, "2025-01-20")
	require.NoError(t, err)
	require.Equal(t, "audit_log_p2025_01", dropped)
	require.NotContains(t, c.partitions(t), "audit_log_p2025_01")
	require.Empty(t, c.export(t, feb), "January's entries are gone")
	entries, err := c.Audit(ctx, "", 100)
	require.NoError(t, err)
	last := entries[len(entries)-1]
	require.Equal(t, "audit.partition_dropped", last.Action)
	require.Equal(t, "db:"+adminRole, last.Actor, "the role that asked")
	require.Equal(t, "audit_log_p2025_01", last.Detail["partition"])
	require.EqualValues(t, 2, last.Detail["entries"])
	require.Equal(t, "2025-01-01T00:00:00+00:00", last.Detail["from"])
	require.Equal(t, "2025-02-01T00:00:00+00:00", last.Detail["to"])

	// The dedicated role can do nothing else to the log.
	_, err = admin.Exec(ctx, `DELETE FROM audit_log`)
	require.ErrorContains(t, err, "permission denied")

	// The application's role, even with every privilege on every table,
	// cannot change an entry, nor drop a partition through the function.
	_, app := c.role(t, "app", `GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public`)
	for _, table := range []string{"audit_log", "audit_log_p2025_02", "audit_log_p" + time.Now().UTC().Format("2006_01")} {
		var n int
		require.NoError(t, app.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n))
		require.NotZero(t, n, table)
		for _, sql := range []string{`UPDATE ` + table + ` SET actor = 'x'`, `DELETE FROM ` + table, `TRUNCATE ` + table} {
			_, err := app.Exec(ctx, sql)
			require.ErrorContains(t, err, "append-only", sql)
		}
	}
	_, err = drop(app, "2025-02-01")
	require.ErrorContains(t, err, "permission denied for function swarmkey_drop_audit_partition")
	require.Len(t, c.export(t, time.Now().Add(time.Hour)), len(entries), "nothing else went")
}
