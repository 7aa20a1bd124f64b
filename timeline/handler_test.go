package timeline_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/timeline"
)

// Loopback clients see the pages; any other client, and any request a
// proxy relays, needs an admin token (bearer, or Basic's password), and a
// runner token is not one.
func TestHandlerServesLoopbackOrAdminTokenOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := rotationtest.State(t)
	set := &daemon.PolicySet{Policies: map[string]daemon.Scheduled{
		"checkout-db": {Plan: &schedule.Timing{Name: "checkout-db", Schedule: schedule.MustParse("0 3 * * *", "UTC"), Window: time.Hour},
			Strategy: "alternating", Store: "file", SecretID: "checkout-db"},
	}}
	require.NoError(t, db.EnsurePolicies(ctx, []state.PolicyState{{Policy: "checkout-db", Strategy: "alternating", Store: "file", SecretID: "checkout-db"}}))
	_, admin, err := db.AddToken(ctx, state.TokenRequest{Name: "ops", Scope: state.ScopeAdmin, CreatedBy: "operator:test"})
	require.NoError(t, err)
	_, runner, err := db.AddToken(ctx, state.TokenRequest{Name: "loadgen", Scope: state.ScopeRunner, Grants: []string{"checkout-db"}, CreatedBy: "operator:test"})
	require.NoError(t, err)
	h := timeline.Handler(timeline.HandlerOptions{DB: db, Policies: func() *daemon.PolicySet { return set }})

	for _, tc := range []struct {
		name, remote, path string
		header             map[string]string
		basic              string
		want               int
	}{
		{name: "IPv4 loopback", remote: "127.0.0.1:50123", path: "/", want: 200},
		{name: "IPv6 loopback", remote: "[::1]:50123", path: "/policies/checkout-db", want: 200},
		{name: "/timeline", remote: "127.0.0.1:50123", path: "/timeline", want: 200},
		{name: "remote, no token", remote: "203.0.113.7:4242", path: "/", want: 401},
		{name: "remote, policy page, no token", remote: "203.0.113.7:4242", path: "/policies/checkout-db", want: 401},
		{name: "relayed by a local proxy", remote: "127.0.0.1:50123", path: "/", header: map[string]string{"X-Forwarded-For": "203.0.113.7"}, want: 401},
		{name: "Forwarded by a local proxy", remote: "127.0.0.1:50123", path: "/", header: map[string]string{"Forwarded": "for=203.0.113.7"}, want: 401},
		{name: "remote, unknown token", remote: "203.0.113.7:4242", path: "/", header: map[string]string{"Authorization": "Bearer swk_not-a-token"}, want: 401},
		{name: "remote, runner token", remote: "203.0.113.7:4242", path: "/", header: map[string]string{"Authorization": "Bearer " + runner.RevealString()}, want: 403},
		{name: "remote, admin bearer", remote: "203.0.113.7:4242", path: "/", header: map[string]string{"Authorization": "Bearer " + admin.RevealString()}, want: 200},
		{name: "remote, admin as Basic password", remote: "203.0.113.7:4242", path: "/policies/checkout-db", basic: admin.RevealString(), want: 200},
		{name: "proxied, admin bearer", remote: "127.0.0.1:50123", path: "/", header: map[string]string{"X-Forwarded-For": "203.0.113.7", "Authorization": "Bearer " + admin.RevealString()}, want: 200},
		{name: "unknown policy", remote: "127.0.0.1:50123", path: "/policies/nope", want: 404},
		{name: "bad days", remote: "127.0.0.1:50123", path: "/?days=400", want: 400},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.RemoteAddr = tc.remote
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		if tc.basic != "" {
			req.SetBasicAuth("ops", tc.basic)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.String()
		require.Equal(t, tc.want, rec.Code, "%s: %s", tc.name, body)
		require.NotContains(t, body, admin.RevealString(), tc.name)
		require.NotContains(t, body, runner.RevealString(), tc.name)
		switch tc.want {
		case 200:
			require.Contains(t, body, "checkout-db", tc.name)
			require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'none'", tc.name)
		case 401:
			require.True(t, strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic "), "%s: a browser asks for the token", tc.name)
			require.NotContains(t, body, "<svg", tc.name)
		default:
			require.NotContains(t, body, "<svg", tc.name)
		}
	}
}

// A policy's page reads that policy's state only, not every policy's: with
// 100,000 policies each page view would read them all. Another policy's
// row that cannot be read (a rotated_at of infinity, which no time.Time
// holds) shows which rows were read.
func TestPolicyPageReadsItsOwnState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, pg := rotationtest.State(t)
	timing := func(name string) daemon.Scheduled {
		return daemon.Scheduled{Plan: &schedule.Timing{Name: name, Schedule: schedule.MustParse("0 3 * * *", "UTC"), Window: time.Hour},
			Strategy: "single", Store: "file", SecretID: name}
	}
	set := &daemon.PolicySet{Policies: map[string]daemon.Scheduled{"checkout-db": timing("checkout-db"), "search-db": timing("search-db")}}
	require.NoError(t, db.EnsurePolicies(ctx, []state.PolicyState{
		{Policy: "checkout-db", Strategy: "single", Store: "file", SecretID: "checkout-db"},
		{Policy: "search-db", Strategy: "single", Store: "file", SecretID: "search-db"}}))
	_, err := pg.Pool.Exec(ctx, `UPDATE policy_state SET rotated_at = 'infinity' WHERE policy = 'search-db'`)
	require.NoError(t, err)

	p, err := timeline.GatherPolicy(ctx, db, set, "checkout-db", timeline.Options{From: time.Now(), To: time.Now().Add(24 * time.Hour)})
	require.NoError(t, err)
	require.Equal(t, "checkout-db", p.State.Policy)
}
