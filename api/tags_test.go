package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/state"
)

// A lease or a read that names a tag tells the token nothing about the
// policies it is not granted: no policy's name, and the same answer for a
// tag that matches ungranted policies as for one that matches none.
func TestTagsRevealNoPolicyTheTokenIsNotGranted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, req := range []state.TokenRequest{
		// Both policies tagged perf, by name.
		{Name: "byname", Scope: state.ScopeRunner, Grants: []string{"checkout-db", "reports-api"}},
		// A tag no policy has.
		{Name: "empty", Scope: state.ScopeRunner, Grants: []string{"tag:nobody", "billing"}},
	} {
		req.CreatedBy = "test"
		_, tok, err := b.db.AddToken(ctx, req)
		require.NoError(t, err)
		b.tokens[req.Name] = tok
	}
	ci, perf, byname, empty := b.client(t, "ci"), b.client(t, "perf"), b.client(t, "byname"), b.client(t, "empty")
	others := []string{"checkout-db", "reports-api", "billing", "fresh", "aws-marker"}

	// ci is granted checkout-db, which is tagged perf, but not reports-api.
	_, err := ci.StartLease(ctx, "r", []string{"tag:perf"}, "h:1", time.Minute)
	require.Equal(t, 403, status(t, err))
	matches := err.Error()
	_, err = ci.StartLease(ctx, "r", []string{"tag:nobody"}, "h:1", time.Minute)
	require.Equal(t, 403, status(t, err))
	none := err.Error()
	require.Equal(t, matches, strings.ReplaceAll(none, "tag:nobody", "tag:perf"),
		"a tag with ungranted policies and a tag with none answer alike")
	for _, msg := range []string{matches, none} {
		for _, name := range others {
			require.NotContains(t, msg, name)
		}
		require.Contains(t, msg, "ask an operator for a token that grants tag:")
	}

	// Granted every policy of the tag by name: the lease is taken.
	l, err := byname.StartLease(ctx, "r", []string{"tag:perf"}, "h:1", time.Minute)
	require.NoError(t, err)
	require.NoError(t, byname.EndLease(ctx, l.ID))
	// Granted the tag itself: it may learn that no policy has it.
	_, err = empty.StartLease(ctx, "r", []string{"tag:nobody"}, "h:1", time.Minute)
	require.Equal(t, 404, status(t, err))
	require.ErrorContains(t, err, `"tag:nobody": no policy has this tag`)
	l, err = perf.StartLease(ctx, "r", []string{"tag:perf"}, "h:1", time.Minute)
	require.NoError(t, err)
	require.NoError(t, perf.EndLease(ctx, l.ID))

	// A read names a policy; a tag gets the same 400 whoever asks.
	var answers []string
	for _, tc := range []struct {
		name string
		tag  string
	}{{"ci", "tag:perf"}, {"perf", "tag:perf"}, {"empty", "tag:nobody"}, {"ci", "tag:nobody"}} {
		_, err := b.client(t, tc.name).Credential(ctx, tc.tag)
		require.Equal(t, 400, status(t, err), "%s reads %s", tc.name, tc.tag)
		for _, name := range others {
			require.NotContains(t, err.Error(), name)
		}
		answers = append(answers, strings.ReplaceAll(err.Error(), tc.tag, "TAG"))
	}
	require.Equal(t, []string{answers[0], answers[0], answers[0], answers[0]}, answers)
	require.Contains(t, answers[0], `"TAG" is a tag: read each policy's credential by the policy's name`)
	require.Empty(t, auditOf(t, b, "credential.read"))
}
