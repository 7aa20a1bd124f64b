package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// auditIDs returns the ids of the entries older than before, oldest first.
func (c *cli) auditIDs(before time.Time) []int64 {
	c.t.Helper()
	rows, err := c.db.Pool.Query(context.Background(), `SELECT id FROM audit_log WHERE at < $1 ORDER BY at, id`, before)
	require.NoError(c.t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(c.t, err)
	return ids
}

type exportedLine struct {
	ID       int64           `json:"id"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Policy   string          `json:"policy"`
	Rotation string          `json:"rotation"`
	Action   string          `json:"action"`
	Detail   json.RawMessage `json:"detail"`
}

func parseExport(t *testing.T, out string) []exportedLine {
	t.Helper()
	var lines []exportedLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l exportedLine
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&l), sc.Text())
		lines = append(lines, l)
	}
	require.NoError(t, sc.Err())
	return lines
}

// audit export --before T writes exactly the entries older than T, as JSON
// lines, with no token in them, and records the export.
func TestAuditExportWritesTheOldEntries(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	ctx := context.Background()
	_, err := c.db.Pool.Exec(ctx, `
		SELECT swarmkey_ensure_audit_partition(m) FROM unnest(ARRAY['2025-01-01', '2025-03-01']::timestamptz[]) m;
		INSERT INTO audit_log (at, actor, policy, action, detail) VALUES
			('2025-01-10T08:00:00Z', 'daemon', 'checkout-db', 'rotation.started', '{"step":"create"}'),
			('2025-01-31T23:59:59.999999Z', 'token:ci', 'checkout-db', 'credential.read', '{"version":"3","big":12345678901234567}'),
			('2025-02-01T00:00:00Z', 'daemon', 'checkout-db', 'rotation.succeeded', '{}'),
			('2025-03-05T00:00:00Z', 'operator:bob', NULL, 'run.added', '{"run":"soak"}')`)
	require.NoError(t, err)
	r := c.run("tokens", "add", "--name", "ci", "--scope", "runner", "--grant", "checkout-db")
	require.Equal(t, 0, r.code, r.stderr)
	token := strings.TrimSpace(r.stdout)

	feb := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	want := c.auditIDs(feb)
	require.Len(t, want, 2)
	for _, before := range []string{"2025-02-01", "2025-02-01T00:00:00Z", "2025-02-01T01:00:00+01:00"} {
		r = c.run("audit", "export", "--before", before)
		require.Equal(t, 0, r.code, r.stderr)
		lines := parseExport(t, r.stdout)
		var ids []int64
		for _, l := range lines {
			ids = append(ids, l.ID)
		}
		require.Equal(t, want, ids, before)
		require.Contains(t, r.stderr, "exported 2 audit entries older than 2025-02-01T00:00:00Z")
		require.Equal(t, "rotation.started", lines[0].Action)
		require.Equal(t, "checkout-db", lines[0].Policy)
		require.True(t, lines[0].At.Equal(time.Date(2025, 1, 10, 8, 0, 0, 0, time.UTC)))
		require.JSONEq(t, `{"version":"3","big":12345678901234567}`, string(lines[1].Detail), "detail as stored")
	}

	// Everything up to now: the token's addition, never the token.
	r = c.run("audit", "export", "--before", "now")
	require.Equal(t, 0, r.code, r.stderr)
	all := parseExport(t, r.stdout)
	require.GreaterOrEqual(t, len(all), 8, "4 old entries, token.added, 3 exports")
	require.Contains(t, r.stdout, `"action":"token.added"`)
	require.NotContains(t, r.stdout, token)

	// Each export is recorded with who, the bound and the count.
	rows, err := c.db.Pool.Query(ctx, `SELECT actor, detail->>'before', (detail->>'entries')::int FROM audit_log
		WHERE action = 'audit.exported' ORDER BY id`)
	require.NoError(t, err)
	type rec struct {
		actor, before string
		entries       int
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rec, error) {
		var x rec
		return x, row.Scan(&x.actor, &x.before, &x.entries)
	})
	require.NoError(t, err)
	require.Len(t, recs, 4)
	me, err := user.Current()
	require.NoError(t, err)
	require.Equal(t, rec{"operator:" + me.Username, "2025-02-01T00:00:00Z", 2}, recs[0])
	require.Equal(t, len(all), recs[3].entries)

	// Bad input writes nothing.
	before := c.snapshot()
	for _, args := range [][]string{
		{"audit", "export"},
		{"audit", "export", "--before", "yesterday"},
		{"audit", "export", "--before", "+1d"},
		{"audit", "exprt"},
	} {
		r := c.run(args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.Empty(t, r.stdout, "%v", args)
	}
	require.Contains(t, c.run("audit", "export", "--before", "+1d").stderr, "is in the future")
	require.Contains(t, c.run("audit", "export").stderr, "--before is required")
	require.Equal(t, before, c.snapshot())
}
