package daemon_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// TestPlanningFollowsChanges: once every policy is planned, a tick plans
// only the policies whose plan may have changed, whatever time passes in
// between: those a run or lease added, cancelled, taken or ended uses, and
// those a reload changed. A policy not planned keeps its row as it was
// (its xmin, the transaction that last wrote it, stays). With a recheck of
// every policy every minute, as before, the tick two minutes on rewrote
// all of them.
func TestPlanningFollowsChanges(t *testing.T) {
	t.Parallel()
	b := setupDaemonWindow(t, 3, "0 12 * * *", 2*time.Hour, 0)
	var states []state.PolicyState
	for name := range b.set.Policies {
		states = append(states, state.PolicyState{Policy: name, Strategy: "single", Store: "file", SecretID: name})
	}
	require.NoError(t, b.db.EnsurePolicies(b.ctx, states))
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d, err := daemon.New(b.pool, b.db, b.set, daemon.Config{Now: func() time.Time { return clock }})
	require.NoError(t, err)
	tick := func(advance time.Duration) map[string]string {
		t.Helper()
		clock = clock.Add(advance)
		_, err := d.PlanOnce(b.ctx)
		require.NoError(t, err)
		return rowVersions(t, b)
	}
	changedSince := func(before, after map[string]string) []string {
		var out []string
		for _, name := range []string{"p00", "p01", "p02"} {
			if before[name] != after[name] {
				out = append(out, name)
			}
		}
		return out
	}

	// The first plan of a replica plans every policy.
	before := rowVersions(t, b)
	planned := tick(0)
	require.Equal(t, []string{"p00", "p01", "p02"}, changedSince(before, planned))

	// Nothing changed: two minutes on, no policy is planned again.
	after := tick(2 * time.Minute)
	require.Empty(t, changedSince(planned, after), "a tick with nothing changed plans nothing")

	// A run over p00's window: p00 alone is planned again, at once, and
	// its fire is deferred.
	_, err = b.db.AddOneOffRun(b.ctx, state.OneOffRunRequest{Name: "soak", Start: time.Date(2030, 1, 1, 11, 0, 0, 0, time.UTC),
		Duration: 4 * time.Hour, Uses: []string{"p00"}, CreatedBy: "test"})
	require.NoError(t, err)
	before, after = after, tick(time.Second)
	require.Equal(t, []string{"p00"}, changedSince(before, after))
	var deferred int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM audit_log WHERE policy = 'p00' AND action = 'rotation.deferred'`).Scan(&deferred))
	require.Equal(t, 1, deferred)

	// The run cancelled: p00 again, alone.
	_, err = b.db.CancelRun(b.ctx, "soak", "test")
	require.NoError(t, err)
	before, after = after, tick(time.Second)
	require.Equal(t, []string{"p00"}, changedSince(before, after))

	// A lease taken on tag:load, then ended: every policy with the tag.
	lease, err := b.db.StartLease(b.ctx, state.LeaseRequest{RunName: "smoke", Uses: []string{"tag:load"}, Holder: "test", TTL: time.Minute})
	require.NoError(t, err)
	before, after = after, tick(time.Second)
	require.Equal(t, []string{"p00", "p01", "p02"}, changedSince(before, after))
	before, after = after, tick(time.Second)
	require.Empty(t, changedSince(before, after), "a change is marked once")
	_, err = b.db.EndLease(b.ctx, lease.ID)
	require.NoError(t, err)
	before, after = after, tick(time.Second)
	require.Equal(t, []string{"p00", "p01", "p02"}, changedSince(before, after))

	// A reload that changes p01's schedule: p01 alone, planned by the new
	// schedule (its fire an hour on, so its next check is just before).
	set := &daemon.PolicySet{Policies: map[string]daemon.Scheduled{}}
	for name, p := range b.set.Policies {
		set.Policies[name] = p
	}
	p01 := set.Policies["p01"]
	plan := *p01.Plan
	plan.Schedule = schedule.MustParse("0 1 * * *", "UTC")
	plan.Window = 30 * time.Minute
	p01.Plan = &plan
	set.Policies["p01"] = p01
	require.NoError(t, d.Reload(b.ctx, set))
	before, after = after, tick(time.Second)
	require.Equal(t, []string{"p01"}, changedSince(before, after))
	var next time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT next_check FROM policy_state WHERE policy = 'p01'`).Scan(&next))
	require.False(t, next.After(time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)), "planned by the new schedule: next check %s", next)
}

// rowVersions is the xmin of each policy's state row: it changes when a
// transaction writes the row.
func rowVersions(t *testing.T, b *daemonBundle) map[string]string {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT policy, xmin::text FROM policy_state`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var policy, xmin string
		require.NoError(t, rows.Scan(&policy, &xmin))
		out[policy] = xmin
	}
	require.NoError(t, rows.Err())
	return out
}

// TestExpandTags: tag:NAME names every policy with the tag, sorted, once
// however often the policy lists it; other uses stay as they are.
func TestExpandTags(t *testing.T) {
	t.Parallel()
	set := &daemon.PolicySet{Policies: map[string]daemon.Scheduled{}}
	for i, tags := range [][]string{{"a", "b"}, {"b", "b"}, nil, {"a"}} {
		set.Policies[fmt.Sprintf("p%d", i)] = daemon.Scheduled{Tags: tags}
	}
	require.Equal(t, []string{"p0", "p3", "x", "p0", "p1", "p0", "p3"},
		set.Expand([]string{"tag:a", "x", "tag:b", "tag:none", "tag:a"}))
}
