package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/state"
)

// teamPolicy is a policy added beside newCLI's checkout-db: a single-strategy
// role of its own, with tags.
type teamPolicy struct {
	name   string
	tags   []string
	canary string
	role   string
}

// addPolicies creates a login role for each policy and appends the policies
// to the config.
func (c *cli) addPolicies(policies ...*teamPolicy) {
	c.t.Helper()
	ctx := context.Background()
	host, port := pgtest.LoginHost(c.t)
	cfg, err := os.ReadFile(c.config)
	require.NoError(c.t, err)
	var b strings.Builder
	b.Write(cfg)
	for _, p := range policies {
		p.role = pgtest.RoleName(c.t, strings.ReplaceAll(p.name, "-", "_"))
		_, err := c.db.Pool.Exec(ctx, `CREATE ROLE `+pgx.Identifier{p.role}.Sanitize()+` LOGIN`)
		require.NoError(c.t, err)
		c.t.Cleanup(func() {
			_, _ = c.db.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+pgx.Identifier{p.role}.Sanitize())
		})
		canary := ""
		if p.canary != "" {
			canary = "\n        canary_query: " + p.canary
		}
		fmt.Fprintf(&b, `  - name: %s
    strategy: single
    secret: loadtest/%s
    %s
    tags: [%s]
    canary: { attempts: 1, interval: 10ms }
    target:
      postgres:
        host: %s
        port: %d
        dbname: %s
        sslmode: disable
        username: %s
        admin: env:PG_ADMIN_URL%s
`, p.name, p.name, c.schedule, strings.Join(p.tags, ", "), host, port, c.db.Name, p.role, canary)
	}
	c.write(c.config, b.String())
}

// current returns the current credential of the policy's secret, if any.
func (c *cli) current(policy string) (login, bool) {
	c.t.Helper()
	v, err := c.fileStore().Get(context.Background(), "loadtest/"+policy, providers.StageCurrent)
	if err != nil {
		return login{}, false
	}
	var l login
	require.NoError(c.t, json.Unmarshal(v.Value.Reveal(), &l))
	return l, true
}

// succeeded returns the policies with a succeeded rotation, sorted.
func (c *cli) succeeded() []string {
	c.t.Helper()
	rows, err := c.db.Pool.Query(context.Background(), `SELECT DISTINCT policy FROM rotations WHERE outcome = 'succeeded' ORDER BY policy`)
	require.NoError(c.t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(c.t, err)
	return names
}

func (c *cli) auditActions(policy, action string) []state.AuditEntry {
	c.t.Helper()
	db := c.stateDB(c.t)
	entries, err := db.Audit(context.Background(), policy, 10000)
	require.NoError(c.t, err)
	var out []state.AuditEntry
	for _, e := range entries {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestRotateTagAndAllSelectExactlyTheirPolicies(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	c.addPolicies(
		&teamPolicy{name: "team-a-one", tags: []string{"team-a"}},
		&teamPolicy{name: "team-a-two", tags: []string{"team-a", "shared"}},
		&teamPolicy{name: "team-b-one", tags: []string{"team-b"}},
	)

	r := c.run("rotate", "--tag", "team-a", "--local", "--concurrency", "2")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "rotating 2 policies (tag:team-a) in this process, 2 at a time")
	require.Regexp(t, `(?m)^  ROTATED +team-a-one `, r.stdout)
	require.Regexp(t, `(?m)^  ROTATED +team-a-two `, r.stdout)
	require.Contains(t, r.stdout, "summary: 2 of 2 policies rotated")
	require.Regexp(t, `(?m)^rotated +2$`, r.stdout)
	require.NotContains(t, r.stdout, "\r", "no progress bar when stdout is not a terminal")
	require.Equal(t, []string{"team-a-one", "team-a-two"}, c.succeeded(), "exactly the tagged policies")
	var passwords []string
	for _, p := range []string{"team-a-one", "team-a-two"} {
		cur, ok := c.current(p)
		require.True(t, ok, p)
		require.True(t, c.logsIn(cur), p)
		passwords = append(passwords, cur.Password)
	}
	_, ok := c.current("team-b-one")
	require.False(t, ok, "team-b-one has no tag team-a")
	emergency := c.auditActions("", "rotation.emergency")
	require.Len(t, emergency, 1)
	require.Equal(t, "operator:"+currentUser(t), emergency[0].Actor)
	require.Equal(t, "tag:team-a", emergency[0].Detail["selector"])
	require.EqualValues(t, 2, emergency[0].Detail["policies"])

	// Two tags: the union, each policy once.
	r = c.run("rotate", "--tag", "shared", "--tag", "team-b", "--local")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "summary: 2 of 2 policies rotated")
	require.Equal(t, []string{"team-a-one", "team-a-two", "team-b-one"}, c.succeeded())

	r = c.run("rotate", "--all", "--local", "--concurrency", "4")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "summary: 4 of 4 policies rotated")
	require.Equal(t, []string{"checkout-db", "team-a-one", "team-a-two", "team-b-one"}, c.succeeded())
	for _, p := range []string{"checkout-db", "team-a-one", "team-a-two", "team-b-one"} {
		cur, ok := c.current(p)
		require.True(t, ok, p)
		require.True(t, c.logsIn(cur), p)
		passwords = append(passwords, cur.Password)
	}
	c.requireNoLeak(passwords...)

	// Bad input: exit 2, naming the flag, nothing rotated.
	before := c.succeededCount()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rotate", "--tag", "team-c", "--local"}, `--tag "team-c": no policy has it; known tags are shared, team-a, team-b`},
		{[]string{"rotate", "checkout-db", "--all", "--local"}, "give a policy NAME or the selection, not both"},
		{[]string{"rotate", "--all", "--tag", "team-a", "--local"}, "--all and --tag"},
		{[]string{"rotate", "--all", "--concurrency", "0", "--local"}, "--concurrency 0"},
		{[]string{"rotate", "checkout-db", "--concurrency", "3", "--local"}, "--concurrency applies to --tag and --all"},
		{[]string{"rotate", "--local"}, "rotate needs a policy NAME, --tag T or --all"},
		{[]string{"rotate", "--all", "--local", "--replace-unreadable-current"}, "--replace-unreadable-current takes one policy NAME"},
	} {
		r := c.run(tc.args...)
		require.Equal(t, 2, r.code, "%v: %s", tc.args, r.stdout+r.stderr)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}
	require.Equal(t, before, c.succeededCount())
}

func (c *cli) succeededCount() int {
	c.t.Helper()
	var n int
	require.NoError(c.t, c.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rotations WHERE outcome = 'succeeded'`).Scan(&n))
	return n
}

// A live lease holds its policy unless --force; a failure and a block are
// each named in the exit message and the summary, and the others rotate.
func TestRotateTagHonoursLeasesAndNamesEachFailure(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	c.addPolicies(
		&teamPolicy{name: "leased-db", tags: []string{"team"}},
		&teamPolicy{name: "broken-db", tags: []string{"team"}, canary: "SELECT * FROM forbidden"},
		&teamPolicy{name: "fine-db", tags: []string{"team"}},
	)
	db := c.stateDB(t)
	lease, err := db.StartLease(context.Background(), state.LeaseRequest{RunName: "soak", Uses: []string{"leased-db"}, Holder: "locust-master", TTL: time.Hour})
	require.NoError(t, err)

	r := c.run("rotate", "--tag", "team", "--local")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "rotate tag:team: 2 of 3 policies did not rotate: broken-db (failed), leased-db (blocked)")
	require.Contains(t, r.stdout, "summary: 1 of 3 policies rotated")
	require.Regexp(t, `(?m)^broken-db +failed +rolled back, the current credential is unchanged: .*canary`, r.stdout)
	require.Regexp(t, `(?m)^leased-db +blocked +rotate leased-db refused: lease "soak`, r.stdout)
	require.Regexp(t, `(?m)^failed +1$`, r.stdout)
	require.Regexp(t, `(?m)^blocked +1$`, r.stdout)
	require.Equal(t, []string{"fine-db"}, c.succeeded())
	_, ok := c.current("leased-db")
	require.False(t, ok, "the lease held: nothing was written")
	var rotations int
	require.NoError(t, c.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rotations WHERE policy = 'leased-db'`).Scan(&rotations))
	require.Zero(t, rotations, "a blocked policy does not start")

	// --force overrides the lease, audited with who and what it overrode.
	r = c.run("rotate", "--tag", "team", "--local", "--force")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "1 of 3 policies did not rotate: broken-db (failed)")
	require.Equal(t, []string{"fine-db", "leased-db"}, c.succeeded())
	leased, ok := c.current("leased-db")
	require.True(t, ok)
	require.True(t, c.logsIn(leased))
	forced := c.auditActions("leased-db", "rotation.forced")
	require.Len(t, forced, 1)
	require.Equal(t, "operator:"+currentUser(t), forced[0].Actor)
	require.Contains(t, fmt.Sprint(forced[0].Detail["overrides"]), "soak")
	require.Empty(t, c.auditActions("fine-db", "rotation.forced"), "nothing blocked fine-db, so nothing was overridden")

	// Once the lease ends, no --force is needed.
	_, err = db.EndLease(context.Background(), lease.ID)
	require.NoError(t, err)
	r = c.run("rotate", "--tag", "team", "--local", "--concurrency", "3")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "1 of 3 policies did not rotate: broken-db (failed)")
	c.requireNoLeak(leased.Password)
}

// Through the daemon: each policy becomes a request the daemon rotates, and
// the command follows them all to the end.
func TestRotateTagThroughTheDaemon(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	c.addPolicies(
		&teamPolicy{name: "team-a-one", tags: []string{"team-a"}},
		&teamPolicy{name: "team-a-two", tags: []string{"team-a"}},
		&teamPolicy{name: "team-a-three", tags: []string{"team-a"}},
		&teamPolicy{name: "team-b-one", tags: []string{"team-b"}},
	)

	// No daemon: nothing is queued, nothing audited.
	r := c.run("rotate", "--tag", "team-a")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "no swarmkey daemon is running")
	require.Contains(t, r.stderr, "--local")
	require.Empty(t, c.auditActions("", "rotation.emergency"))

	c.serve(t)
	db := c.stateDB(t)
	_, err := db.AddOneOffRun(context.Background(), state.OneOffRunRequest{Name: "nightly-soak", Start: time.Now().Add(-time.Minute),
		Duration: time.Hour, Uses: []string{"team-a-three"}, CreatedBy: "test"})
	require.NoError(t, err)

	// Concurrency 1: one request outstanding at a time, topped up as each ends.
	r = c.run("rotate", "--tag", "team-a", "--concurrency", "1")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "rotating 3 policies (tag:team-a) through the daemon, 1 at a time")
	require.Contains(t, r.stderr, "1 of 3 policies did not rotate: team-a-three (blocked)")
	require.Regexp(t, `(?m)^team-a-three +blocked +rotate team-a-three refused: run "nightly-soak"`, r.stdout)
	require.Equal(t, []string{"team-a-one", "team-a-two"}, c.succeeded())
	rows, err := c.db.Pool.Query(context.Background(), `SELECT DISTINCT actor FROM rotations`)
	require.NoError(t, err)
	actors, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"operator:" + currentUser(t)}, actors, "the daemon rotated them as the operator's requests")

	r = c.run("rotate", "--tag", "team-a", "--force", "--concurrency", "2")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "summary: 3 of 3 policies rotated")
	require.Equal(t, []string{"team-a-one", "team-a-three", "team-a-two"}, c.succeeded())
	_, ok := c.current("team-b-one")
	require.False(t, ok)
	var passwords []string
	for _, p := range []string{"team-a-one", "team-a-two", "team-a-three"} {
		cur, ok := c.current(p)
		require.True(t, ok, p)
		require.True(t, c.logsIn(cur), p)
		passwords = append(passwords, cur.Password)
	}
	require.Regexp(t, `(?m)^  ROTATED +team-a-three `, r.stdout)
	c.requireNoLeak(passwords...)
}
