package state_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/state"
)

// AppendAudits appends every entry in order, or none; a month without a
// partition gets one (and the next month's) on the way, as AppendAudit's
// months do.
func TestAppendAuditsAppendsAllInOrderOrNone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClockDB(t)
	reads := func(policies ...string) []state.AuditEntry {
		var out []state.AuditEntry
		for i, p := range policies {
			out = append(out, state.AuditEntry{Actor: "operator:tester", Policy: p, Action: "credential.read",
				Detail: map[string]any{"version": "v" + p, "via": "exec", "n": i}})
		}
		return out
	}

	// A month far ahead has no partition yet: the insert finds none, the
	// partition is made, the insert runs again.
	c.now = time.Date(2031, 5, 17, 8, 0, 0, 0, time.UTC)
	require.NotContains(t, c.partitions(t), "audit_log_p2031_05")
	require.NoError(t, c.AppendAudits(ctx, reads("checkout-db", "reports", "search")))
	require.Contains(t, c.partitions(t), "audit_log_p2031_05")
	require.Contains(t, c.partitions(t), "audit_log_p2031_06", "the next month's too, as AppendAudit makes it")

	entries, err := c.Audit(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, entries, 3)
	// Audit lists by id: the ids follow the order given.
	for i, want := range []string{"checkout-db", "reports", "search"} {
		e := entries[i]
		require.Equal(t, want, e.Policy)
		require.Equal(t, "operator:tester", e.Actor)
		require.Equal(t, "credential.read", e.Action)
		require.True(t, e.At.Equal(c.now), "the DB's clock: %s", e.At)
		require.Equal(t, "v"+want, e.Detail["version"])
		require.Equal(t, "exec", e.Detail["via"])
		require.Empty(t, e.Rotation)
	}

	// One entry the table refuses (a rotation that is no UUID) and none of
	// them is appended.
	bad := reads("first", "second")
	bad[1].Rotation = "not-a-uuid"
	require.Error(t, c.AppendAudits(ctx, bad))
	after, err := c.Audit(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, after, 3, "nothing of the refused call was appended")

	require.NoError(t, c.AppendAudits(ctx, nil), "nothing to append is no error")
}
