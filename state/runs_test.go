package state

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/schedule"
)

// clock is a settable time for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// t0 has no sub-microsecond part, so times round-trip through PostgreSQL.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func setupRuns(t *testing.T) (*DB, context.Context, *clock) {
	t.Helper()
	ctx := context.Background()
	pool, err := Connect(ctx, pgtest.New(t).URL)
	require.NoError(t, err)
	c := &clock{t: t0}
	db := NewFromPool(pool, Options{Now: c.now})
	t.Cleanup(db.Close)
	_, err = db.Migrate(ctx)
	require.NoError(t, err)
	return db, ctx, c
}

func TestRunsRoundTrip(t *testing.T) {
	t.Parallel()
	db, ctx, _ := setupRuns(t)

	once, err := db.AddOneOffRun(ctx, OneOffRunRequest{Name: "release-soak", Start: t0.Add(2 * time.Hour),
		Duration: 90 * time.Minute, Uses: []string{"checkout-db", "tag:web", "checkout-db"}, CreatedBy: "operator:alice"})
	require.NoError(t, err)
	require.Equal(t, RunOneOff, once.Kind)
	require.Equal(t, t0.Add(2*time.Hour), once.Start)
	require.Equal(t, 90*time.Minute, once.Duration)
	require.Equal(t, []string{"checkout-db", "tag:web"}, once.Uses, "duplicates are dropped, order kept")
	require.Equal(t, t0, once.CreatedAt)
	require.Nil(t, once.CancelledAt)

	nightly, err := db.AddRecurringRun(ctx, RecurringRunRequest{Name: "nightly", Every: " 30 2 * * * ", Timezone: "Europe/Berlin",
		Duration: time.Hour, Uses: []string{"tag:web"}, CreatedBy: "operator:alice"})
	require.NoError(t, err)
	require.Equal(t, RunRecurring, nightly.Kind)
	require.Equal(t, "30 2 * * *", nightly.Every, "the spec is stored trimmed")
	require.Equal(t, "Europe/Berlin", nightly.Timezone)
	require.True(t, nightly.Start.IsZero())

	utc, err := db.AddRecurringRun(ctx, RecurringRunRequest{Name: "hourly", Every: "@hourly", Duration: 10 * time.Minute,
		Uses: []string{"p"}, CreatedBy: "operator:bob"})
	require.NoError(t, err)
	require.Equal(t, "UTC", utc.Timezone, "an empty zone is stored as UTC")

	runs, err := db.ListRuns(ctx, false)
	require.NoError(t, err)
	require.Equal(t, []Run{once, nightly, utc}, runs)
}

func TestActiveRunNamesAreUniqueAndCancelKeepsTheRow(t *testing.T) {
	t.Parallel()
	db, ctx, clk := setupRuns(t)

	req := OneOffRunRequest{Name: "soak", Start: t0.Add(time.Hour), Duration: time.Hour, Uses: []string{"p"}, CreatedBy: "operator:alice"}
	first, err := db.AddOneOffRun(ctx, req)
	require.NoError(t, err)

	_, err = db.AddRecurringRun(ctx, RecurringRunRequest{Name: "soak", Every: "@daily", Duration: time.Hour, Uses: []string{"p"}, CreatedBy: "operator:bob"})
	require.ErrorIs(t, err, ErrRunExists, "one-off and recurring runs share names")
	require.ErrorContains(t, err, `run "soak"`)

	_, err = db.CancelRun(ctx, "no-such-run", "operator:alice")
	require.ErrorIs(t, err, ErrNotFound)

	clk.advance(time.Minute)
	cancelled, err := db.CancelRun(ctx, "soak", "operator:carol")
	require.NoError(t, err)
	require.Equal(t, first.ID, cancelled.ID)
	require.NotNil(t, cancelled.CancelledAt)
	require.Equal(t, t0.Add(time.Minute), *cancelled.CancelledAt)
	require.Equal(t, "operator:carol", cancelled.CancelledBy)

	_, err = db.CancelRun(ctx, "soak", "operator:carol")
	require.ErrorIs(t, err, ErrNotFound, "a cancelled run is not active")

	second, err := db.AddOneOffRun(ctx, req)
	require.NoError(t, err, "a cancelled run's name may be reused")

	active, err := db.ListRuns(ctx, false)
	require.NoError(t, err)
	require.Equal(t, []Run{second}, active)
	all, err := db.ListRuns(ctx, true)
	require.NoError(t, err)
	require.Equal(t, []Run{cancelled, second}, all)
}

func TestInvalidRunsAreRefusedAndWriteNothing(t *testing.T) {
	t.Parallel()
	db, ctx, _ := setupRuns(t)

	ok := OneOffRunRequest{Name: "r", Start: t0.Add(time.Hour), Duration: time.Hour, Uses: []string{"p"}, CreatedBy: "operator:a"}
	okRec := RecurringRunRequest{Name: "r", Every: "0 * * * *", Duration: time.Hour, Uses: []string{"p"}, CreatedBy: "operator:a"}
	oneOff := func(f func(*OneOffRunRequest)) func() error {
		return func() error {
			r := ok
			f(&r)
			_, err := db.AddOneOffRun(ctx, r)
			return err
		}
	}
	recurring := func(f func(*RecurringRunRequest)) func() error {
		return func() error {
			r := okRec
			f(&r)
			_, err := db.AddRecurringRun(ctx, r)
			return err
		}
	}
	cases := []struct {
		name  string
		add   func() error
		field string
	}{
		{"empty name", oneOff(func(r *OneOffRunRequest) { r.Name = "" }), "name"},
		{"name with a space", oneOff(func(r *OneOffRunRequest) { r.Name = "two words" }), "name"},
		{"zero duration", oneOff(func(r *OneOffRunRequest) { r.Duration = 0 }), "duration"},
		{"negative duration", oneOff(func(r *OneOffRunRequest) { r.Duration = -time.Minute }), "duration"},
		{"no start", oneOff(func(r *OneOffRunRequest) { r.Start = time.Time{} }), "start"},
		{"ended in the past", oneOff(func(r *OneOffRunRequest) { r.Start = t0.Add(-2 * time.Hour) }), "start"},
		{"ends exactly now", oneOff(func(r *OneOffRunRequest) { r.Start = t0.Add(-time.Hour) }), "start"},
		{"no uses", oneOff(func(r *OneOffRunRequest) { r.Uses = nil }), "uses"},
		{"empty use", oneOff(func(r *OneOffRunRequest) { r.Uses = []string{"p", ""} }), "uses"},
		{"tag without a name", oneOff(func(r *OneOffRunRequest) { r.Uses = []string{"tag:"} }), "uses"},
		{"no creator", oneOff(func(r *OneOffRunRequest) { r.CreatedBy = " " }), "created_by"},
		{"bad cron", recurring(func(r *RecurringRunRequest) { r.Every = "61 * * * *" }), "every"},
		{"zone in the spec", recurring(func(r *RecurringRunRequest) { r.Every = "TZ=UTC 0 * * * *" }), "every"},
		{"never fires", recurring(func(r *RecurringRunRequest) { r.Every = "0 0 30 2 *" }), "every"},
		{"unknown zone", recurring(func(r *RecurringRunRequest) { r.Timezone = "Mars/Olympus_Mons" }), "timezone"},
		{"local zone", recurring(func(r *RecurringRunRequest) { r.Timezone = "Local" }), "timezone"},
		{"runs overlap", recurring(func(r *RecurringRunRequest) { r.Duration = 61 * time.Minute }), "duration"},
		{"recurring zero duration", recurring(func(r *RecurringRunRequest) { r.Duration = 0 }), "duration"},
	}
	for _, tc := range cases {
		err := tc.add()
		var inv *InvalidRunError
		require.ErrorAs(t, err, &inv, tc.name)
		require.Equal(t, tc.field, inv.Field, tc.name+": "+err.Error())
		require.NotEmpty(t, inv.Reason, tc.name)
	}
	var n int
	require.NoError(t, db.pool.QueryRow(ctx, `SELECT count(*) FROM runs`).Scan(&n))
	require.Zero(t, n)

	_, err := db.AddRecurringRun(ctx, RecurringRunRequest{Name: "r", Every: "0 * * * *", Duration: time.Hour, Uses: []string{"p"}, CreatedBy: "operator:a"})
	require.NoError(t, err, "a duration equal to the period is back-to-back runs, which is allowed")
	_, err = db.AddOneOffRun(ctx, OneOffRunRequest{Name: "started", Start: t0.Add(-30 * time.Minute), Duration: time.Hour,
		Uses: []string{"p"}, CreatedBy: "operator:a"})
	require.NoError(t, err, "a run that is under way may be recorded")
}

func TestLeaseLifecycle(t *testing.T) {
	t.Parallel()
	db, ctx, clk := setupRuns(t)

	l, err := db.StartLease(ctx, LeaseRequest{RunName: "soak", Uses: []string{"p", "tag:web"}, Holder: "host-1/4242/alice", TTL: time.Minute})
	require.NoError(t, err)
	require.Len(t, l.ID, 36)
	require.Equal(t, t0, l.StartedAt)
	require.Equal(t, t0, l.LastHeartbeat)
	require.Equal(t, time.Minute, l.TTL)
	require.Nil(t, l.EndedAt)

	clk.advance(50 * time.Second)
	l, err = db.HeartbeatLease(ctx, l.ID)
	require.NoError(t, err)
	require.Equal(t, t0.Add(50*time.Second), l.LastHeartbeat)
	require.Equal(t, t0, l.StartedAt)

	clk.advance(time.Minute) // exactly TTL after the last heartbeat: expired
	_, err = db.HeartbeatLease(ctx, l.ID)
	require.ErrorIs(t, err, ErrLeaseExpired, "an expired lease is not revived")

	clk.advance(time.Second)
	ended, err := db.EndLease(ctx, l.ID)
	require.NoError(t, err)
	require.NotNil(t, ended.EndedAt)
	require.Equal(t, t0.Add(111*time.Second), *ended.EndedAt)

	clk.advance(time.Second)
	again, err := db.EndLease(ctx, l.ID)
	require.NoError(t, err, "ending twice is safe")
	require.Equal(t, ended, again)
	_, err = db.HeartbeatLease(ctx, l.ID)
	require.ErrorIs(t, err, ErrLeaseEnded)

	for _, id := range []string{"0190b5a4-0000-7000-8000-000000000001", "not-a-uuid"} {
		_, err = db.HeartbeatLease(ctx, id)
		require.ErrorIs(t, err, ErrNotFound, id)
		_, err = db.EndLease(ctx, id)
		require.ErrorIs(t, err, ErrNotFound, id)
	}

	for _, bad := range []LeaseRequest{
		{RunName: "", Uses: []string{"p"}, Holder: "h", TTL: time.Minute},
		{RunName: "r", Uses: nil, Holder: "h", TTL: time.Minute},
		{RunName: "r", Uses: []string{"p"}, Holder: "", TTL: time.Minute},
		{RunName: "r", Uses: []string{"p"}, Holder: "h", TTL: 0},
		{RunName: "r", Uses: []string{"p"}, Holder: "h\x00", TTL: time.Minute},
		{RunName: "r", Uses: []string{"p"}, Holder: "h\xff", TTL: time.Minute},
		{RunName: "r\xff", Uses: []string{"p"}, Holder: "h", TTL: time.Minute},
		{RunName: "r", Uses: []string{"p\xff"}, Holder: "h", TTL: time.Minute},
	} {
		_, err := db.StartLease(ctx, bad)
		var inv *InvalidRunError
		require.ErrorAs(t, err, &inv, "%+v", bad)
	}
}

func TestCalendar(t *testing.T) {
	t.Parallel()
	db, ctx, clk := setupRuns(t)
	by := "operator:alice"

	// Recorded over a simulated day: the clock moves so that past runs and
	// leases can be written.
	_, err := db.AddOneOffRun(ctx, OneOffRunRequest{Name: "long-ago", Start: t0, Duration: time.Hour, Uses: []string{"a"}, CreatedBy: by})
	require.NoError(t, err)
	_, err = db.AddOneOffRun(ctx, OneOffRunRequest{Name: "yesterday", Start: t0.Add(20 * time.Hour), Duration: time.Hour, Uses: []string{"a"}, CreatedBy: by})
	require.NoError(t, err)
	_, err = db.AddOneOffRun(ctx, OneOffRunRequest{Name: "cancelled", Start: t0.Add(30 * time.Hour), Duration: time.Hour, Uses: []string{"a"}, CreatedBy: by})
	require.NoError(t, err)
	_, err = db.CancelRun(ctx, "cancelled", by)
	require.NoError(t, err)
	_, err = db.AddOneOffRun(ctx, OneOffRunRequest{Name: "soon", Start: t0.Add(48 * time.Hour), Duration: 2 * time.Hour,
		Uses: []string{"a", "tag:web"}, CreatedBy: by})
	require.NoError(t, err)
	_, err = db.AddRecurringRun(ctx, RecurringRunRequest{Name: "nightly", Every: "30 2 * * *", Timezone: "Europe/Berlin",
		Duration: time.Hour, Uses: []string{"tag:web"}, CreatedBy: by})
	require.NoError(t, err)

	_, err = db.StartLease(ctx, LeaseRequest{RunName: "crashed-long-ago", Uses: []string{"a"}, Holder: "h/1/u", TTL: time.Minute})
	require.NoError(t, err)
	endedOld, err := db.StartLease(ctx, LeaseRequest{RunName: "ended-long-ago", Uses: []string{"a"}, Holder: "h/2/u", TTL: time.Minute})
	require.NoError(t, err)
	clk.advance(time.Hour)
	_, err = db.EndLease(ctx, endedOld.ID)
	require.NoError(t, err)
	clk.advance(46 * time.Hour) // t0+47h
	_, err = db.StartLease(ctx, LeaseRequest{RunName: "crashed", Uses: []string{"a"}, Holder: "h/3/u", TTL: time.Minute})
	require.NoError(t, err)
	clk.advance(25 * time.Minute)
	ended, err := db.StartLease(ctx, LeaseRequest{RunName: "ended", Uses: []string{"tag:web"}, Holder: "h/4/u", TTL: time.Minute})
	require.NoError(t, err)
	clk.advance(time.Minute)
	ended, err = db.EndLease(ctx, ended.ID)
	require.NoError(t, err)
	live, err := db.StartLease(ctx, LeaseRequest{RunName: "live", Uses: []string{"b"}, Holder: "h/5/u", TTL: time.Minute})
	require.NoError(t, err)
	clk.advance(30 * time.Second)
	now := clk.now() // t0+47h26m30s

	expand := func(uses []string) []string {
		var out []string
		for _, u := range uses {
			if u == "tag:web" {
				out = append(out, "web-1", "web-2")
				continue
			}
			out = append(out, u)
		}
		return out
	}
	// The lookback is a day before now: t0+23h26m30s.
	busy, err := db.Calendar(ctx, now.Add(-time.Hour), expand)
	require.NoError(t, err)
	require.Equal(t, []schedule.OneOffRun{
		{Name: "soon", Start: t0.Add(48 * time.Hour), Duration: 2 * time.Hour, Policies: []string{"a", "web-1", "web-2"}},
	}, busy.OneOff, "ended a day before now, cancelled: left out")

	busy, err = db.Calendar(ctx, now, expand)
	require.NoError(t, err)
	require.Len(t, busy.OneOff, 1)
	require.Len(t, busy.Recurring, 1)
	rec := busy.Recurring[0]
	require.Equal(t, "nightly", rec.Name)
	require.Equal(t, time.Hour, rec.Duration)
	require.Equal(t, []string{"web-1", "web-2"}, rec.Policies)
	require.Equal(t, schedule.MustParse("30 2 * * *", "Europe/Berlin").Next(now), rec.Schedule.Next(now))

	var names []string
	for _, l := range busy.Leases {
		names = append(names, l.Name)
	}
	require.Equal(t, []string{"crashed", "ended", "live"}, names,
		"leases that ended or expired over a day ago are left out; the planner judges the rest")
	require.True(t, busy.Leases[0].Expired(now), "crashed: no heartbeat for 26 minutes, TTL 1m")
	require.Equal(t, []string{"a"}, busy.Leases[0].Policies)
	require.Equal(t, ended.EndedAt, busy.Leases[1].Ended)
	require.Equal(t, []string{"web-1", "web-2"}, busy.Leases[1].Policies)
	require.Equal(t, live.StartedAt, busy.Leases[2].Started)
	require.Equal(t, time.Minute, busy.Leases[2].TTL)
	require.False(t, busy.Leases[2].Expired(now))

	// The planner files each run and lease under the expanded policies.
	cal := schedule.NewCalendar(busy)
	require.Len(t, cal.For("web-2").Leases, 1)
	require.Len(t, cal.For("web-2").Recurring, 1)
	require.Len(t, cal.For("b").Leases, 1)
	require.Empty(t, cal.For("c").Leases)

	// A nil expand keeps uses as written.
	busy, err = db.Calendar(ctx, now, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "tag:web"}, busy.OneOff[0].Policies)
}
