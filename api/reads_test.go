package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/api/client"
	"github.com/swarmkey/swarmkey/state"
)

// readCounts returns credential_reads as "token lease policy version"
// → count, with the lease as "-" when none and "L" for lease.
func readCounts(t *testing.T, b *bundle, lease string) map[string]int64 {
	t.Helper()
	rows, err := b.pg.Pool.Query(context.Background(), `
		SELECT t.name, r.lease, r.policy, r.version, r.count
		FROM credential_reads r JOIN tokens t ON t.id = r.token_id`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name, l, policy, version string
		var n int64
		require.NoError(t, rows.Scan(&name, &l, &policy, &version, &n))
		switch l {
		case "":
			l = "-"
		case lease:
			l = "L"
		}
		out[name+" "+l+" "+policy+" "+version] = n
	}
	require.NoError(t, rows.Err())
	return out
}

func auditOf(t *testing.T, b *bundle, action string) []state.AuditEntry {
	t.Helper()
	entries, err := b.db.Audit(context.Background(), "", 10000)
	require.NoError(t, err)
	var out []state.AuditEntry
	for _, e := range entries {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// A runner that reads the same credential 1,000 times writes one audit
// entry, and the count says 1,000. A lease, and a new version, each start a
// new count with its own first-read entry; the lease's end sums them up.
func TestReadsAreAuditedOncePerLeaseAndVersionAndCounted(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *api.Options) { o.ReadLimit = rate.Inf })
	ctx := context.Background()
	ci, perf := b.client(t, "ci"), b.client(t, "perf")

	var v1 string
	for range 1000 {
		cred, err := ci.Credential(ctx, "checkout-db")
		require.NoError(t, err)
		v1 = cred.Version
	}
	reads := auditOf(t, b, "credential.read")
	require.Equal(t, 1, len(reads), "one entry for 1,000 reads")
	require.Equal(t, "token:ci", reads[0].Actor)
	require.Equal(t, "checkout-db", reads[0].Policy)
	require.Equal(t, v1, reads[0].Detail["version"])
	require.NotContains(t, reads[0].Detail, "lease")
	require.Equal(t, map[string]int64{"ci - checkout-db " + v1: 1000}, readCounts(t, b, ""))

	// Under a lease that covers the policy (through a tag, for perf).
	l, err := ci.StartLease(ctx, "soak", []string{"checkout-db"}, "locust:1", time.Minute)
	require.NoError(t, err)
	pl, err := perf.StartLease(ctx, "soak", []string{"tag:perf"}, "locust:2", time.Minute)
	require.NoError(t, err)
	for range 10 {
		_, err := ci.Credential(ctx, "checkout-db")
		require.NoError(t, err)
	}
	b.put("checkout-db", `{"username":"loadtest_b","password":"`+values[0]+`-2"}`)
	var v2 string
	for range 5 {
		cred, err := ci.Credential(ctx, "checkout-db")
		require.NoError(t, err)
		v2 = cred.Version
	}
	require.NotEqual(t, v1, v2)
	cred, err := perf.Credential(ctx, "reports-api")
	require.NoError(t, err)
	// A policy the lease does not cover counts under no lease.
	_, err = ci.Credential(ctx, "aws-marker")
	require.Equal(t, 404, status(t, err), "nothing current: nothing counted")

	counts := readCounts(t, b, l.ID)
	require.Equal(t, map[string]int64{
		"ci - checkout-db " + v1:                         1000,
		"ci L checkout-db " + v1:                         10,
		"ci L checkout-db " + v2:                         5,
		"perf " + pl.ID + " reports-api " + cred.Version: 1,
	}, counts)
	reads = auditOf(t, b, "credential.read")
	require.Len(t, reads, 4)
	require.Equal(t, l.ID, reads[1].Detail["lease"])
	require.Equal(t, v1, reads[1].Detail["version"])
	require.Equal(t, l.ID, reads[2].Detail["lease"])
	require.Equal(t, v2, reads[2].Detail["version"])
	require.Equal(t, "token:perf", reads[3].Actor)

	require.NoError(t, ci.EndLease(ctx, l.ID))
	ended := auditOf(t, b, "lease.ended")
	require.Len(t, ended, 1)
	require.Equal(t, []any{
		map[string]any{"policy": "checkout-db", "version": v1, "count": float64(10)},
		map[string]any{"policy": "checkout-db", "version": v2, "count": float64(5)},
	}, ended[0].Detail["reads"])

	// After the lease, reads count under no lease again.
	_, err = ci.Credential(ctx, "checkout-db")
	require.NoError(t, err)
	require.EqualValues(t, 1, readCounts(t, b, "")["ci - checkout-db "+v2])
	require.Len(t, auditOf(t, b, "credential.read"), 5)

	entries, err := b.db.Audit(ctx, "", 10000)
	require.NoError(t, err)
	requireAbsent(t, b, entries)
}

// Past its burst, a token's reads get 429 with Retry-After until its bucket
// refills; other tokens are not affected, and a refused read is neither
// sent, counted nor audited.
func TestCredentialReadsAreRateLimitedPerToken(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *api.Options) { o.ReadLimit, o.ReadBurst = 2, 3 })
	ctx := context.Background()
	ci, perf := b.client(t, "ci"), b.client(t, "perf")

	for range 3 {
		_, err := ci.Credential(ctx, "checkout-db")
		require.NoError(t, err)
	}
	_, err := ci.Credential(ctx, "checkout-db")
	require.Equal(t, http.StatusTooManyRequests, status(t, err))
	var apiErr *client.Error
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, time.Second, apiErr.RetryAfter, "Retry-After: 1 (0.5s rounded up)")
	require.ErrorContains(t, err, `token "ci" reads credentials faster than its limit (2 a second, 3 at once): retry after 1s`)
	// Refusals count against the limit too: an ungranted name is 429 now.
	_, err = ci.Credential(ctx, "billing")
	require.Equal(t, http.StatusTooManyRequests, status(t, err))

	_, err = perf.Credential(ctx, "reports-api")
	require.NoError(t, err, "another token has its own bucket")

	var v string
	require.Eventually(t, func() bool {
		cred, err := ci.Credential(ctx, "checkout-db")
		v = cred.Version
		return err == nil
	}, 3*time.Second, 100*time.Millisecond, "the bucket refills")
	require.EqualValues(t, 4, readCounts(t, b, "")["ci - checkout-db "+v], "the refused reads were not counted")
	require.Len(t, auditOf(t, b, "credential.read"), 2)
}
