package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/swarmkey/swarmkey/api"
)

// POST /v1/credentials reads several policies in one request: in the order
// asked, each read counted and audited as a single read is, under the
// token's lease.
func TestCredentialsReadsSeveralPoliciesInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	perf := b.client(t, "perf")

	creds, err := perf.Credentials(ctx, []string{"reports-api", "checkout-db"})
	require.NoError(t, err)
	require.Len(t, creds, 2)
	require.Equal(t, "reports-api", creds[0].Policy)
	require.Equal(t, values[1], creds[0].Fields["api_key"].RevealString())
	require.Equal(t, "checkout-db", creds[1].Policy)
	require.Equal(t, values[0], creds[1].Fields["password"].RevealString())
	require.Equal(t, "5432", creds[1].Fields["port"].RevealString(), "a number field as its JSON text")
	require.Equal(t, map[string]int64{
		"perf - reports-api " + creds[0].Version: 1,
		"perf - checkout-db " + creds[1].Version: 1,
	}, readCounts(t, b, ""))
	reads := auditOf(t, b, "credential.read")
	require.Len(t, reads, 2)
	for i, r := range reads {
		require.Equal(t, "token:perf", r.Actor)
		require.Equal(t, creds[i].Policy, r.Policy)
		require.Equal(t, creds[i].Version, r.Detail["version"])
	}

	// Under a lease of the tag, both count under the lease.
	l, err := perf.StartLease(ctx, "soak", []string{"tag:perf"}, "locust:1", time.Minute)
	require.NoError(t, err)
	_, err = perf.Credentials(ctx, []string{"checkout-db", "reports-api"})
	require.NoError(t, err)
	counts := readCounts(t, b, l.ID)
	require.EqualValues(t, 1, counts["perf L checkout-db "+creds[1].Version])
	require.EqualValues(t, 1, counts["perf L reports-api "+creds[0].Version])
	require.Len(t, auditOf(t, b, "credential.read"), 4)

	entries, err := b.db.Audit(ctx, "", 10000)
	require.NoError(t, err)
	requireAbsent(t, b, entries)
}

// One refused policy refuses the whole request with that policy's answer,
// the first in the order asked; nothing is sent, counted or audited.
func TestCredentialsAreAllOrNone(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *api.Options) { o.ReadLimit = rate.Inf })
	ctx := context.Background()
	ci := b.client(t, "ci")
	token := b.tokens["ci"].RevealString()

	for _, tc := range []struct {
		policies []string
		status   int
		want     string
	}{
		{[]string{"checkout-db", "billing"}, 403, `token "ci" is not granted policy "billing"`},
		{[]string{"checkout-db", "not-configured"}, 404, `policy "not-configured" is not configured`},
		{[]string{"checkout-db", "fresh"}, 404, `policy "fresh" has no current credential yet`},
		{[]string{"checkout-db", "aws-marker", "fresh"}, 404, `policy "aws-marker" has no current credential yet`},
		{[]string{"billing", "fresh"}, 403, `not granted policy "billing"`},
		{[]string{"checkout-db", "tag:perf"}, 400, `"tag:perf" is a tag`},
		{[]string{"checkout-db", "checkout-db"}, 400, `"checkout-db" is asked twice`},
		{[]string{}, 400, "give 1 to 100 policy names (got 0)"},
	} {
		creds, err := ci.Credentials(ctx, tc.policies)
		require.Nil(t, creds, "%v", tc.policies)
		require.Equal(t, tc.status, status(t, err), "%v: %v", tc.policies, err)
		require.ErrorContains(t, err, tc.want, "%v", tc.policies)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("p%d", i)
	}
	_, err := ci.Credentials(ctx, many)
	require.Equal(t, 400, status(t, err))
	require.ErrorContains(t, err, "give 1 to 100 policy names (got 101)")
	code, msg := b.raw(t, http.MethodPost, "/v1/credentials", token, `{"policies":["checkout-db"],"lease":"x"}`)
	require.Equal(t, 400, code, msg)
	require.Contains(t, msg, "unknown field")
	code, msg = b.raw(t, http.MethodPost, "/v1/credentials", b.tokens["ops"].RevealString(), `{"policies":["checkout-db"]}`)
	require.Equal(t, 403, code, "an admin token reads no credential: %s", msg)

	require.Empty(t, readCounts(t, b, ""), "no refused request counted a read")
	require.Empty(t, auditOf(t, b, "credential.read"), "no refused request audited a read")
}

// A request takes as many reads from the token's limit as it asks for, or
// none; one larger than the token's burst could never pass and is refused
// as such.
func TestCredentialsTakeOneReadPerPolicyFromTheLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *api.Options) { o.ReadLimit, o.ReadBurst = 0.5, 3 })
	ctx := context.Background()
	perf := b.client(t, "perf")

	_, err := perf.Credentials(ctx, []string{"checkout-db", "reports-api"})
	require.NoError(t, err)
	_, err = perf.Credentials(ctx, []string{"checkout-db", "reports-api"})
	require.Equal(t, http.StatusTooManyRequests, status(t, err), "one read left, two asked")
	_, err = perf.Credential(ctx, "checkout-db")
	require.NoError(t, err, "the refused request took nothing from the bucket")

	b2 := setup(t, func(o *api.Options) { o.ReadLimit, o.ReadBurst = 20, 1 })
	_, err = b2.client(t, "perf").Credentials(ctx, []string{"checkout-db", "reports-api"})
	require.Equal(t, 400, status(t, err))
	require.ErrorContains(t, err, `2 at once is more than token "perf" may read at once (1): ask in smaller requests`)
}

// When the reads cannot all be recorded, none is: the first is rolled back
// with the failed second, and no value is sent.
func TestCredentialsAreRecordedInOneTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.pg.Pool.Exec(ctx, `
		CREATE FUNCTION refuse_reports() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.policy = 'reports-api' THEN RAISE EXCEPTION 'refused by the test'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_reports BEFORE INSERT ON credential_reads
			FOR EACH ROW EXECUTE FUNCTION refuse_reports();`)
	require.NoError(t, err)
	perf := b.client(t, "perf")

	creds, err := perf.Credentials(ctx, []string{"checkout-db", "reports-api"})
	require.Nil(t, creds)
	require.Equal(t, http.StatusServiceUnavailable, status(t, err))
	require.ErrorContains(t, err, "the reads of 2 policies could not be audited, so no credential was sent; try again")
	require.Empty(t, readCounts(t, b, ""), "checkout-db's read was rolled back with reports-api's")
	require.Empty(t, auditOf(t, b, "credential.read"))
	for _, v := range values {
		require.NotContains(t, err.Error(), v)
	}
	require.True(t, strings.Contains(b.logs.String(), "audit credential reads"), "the log says why")

	// The pool's session of the failed batch is not reused half-way
	// through a transaction: the next request works.
	_, err = perf.Credentials(ctx, []string{"checkout-db"})
	require.NoError(t, err)
	require.Len(t, auditOf(t, b, "credential.read"), 1)
	entries, err := b.db.Audit(ctx, "", 10000)
	require.NoError(t, err)
	requireAbsent(t, b, entries)
}
