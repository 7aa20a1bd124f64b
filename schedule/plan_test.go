package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// daily returns a policy firing at 03:00 UTC with a 2h window and a 10m
// rotation.
func daily() Timing {
	return Timing{
		Name:             "checkout-db",
		Schedule:         MustParse("0 3 * * *", ""),
		Window:           2 * time.Hour,
		ExpectedDuration: 10 * time.Minute,
	}
}

func ptr(t time.Time) *time.Time { return &t }

func TestPlanFreeWindow(t *testing.T) {
	t.Parallel()
	p := daily()
	d := Plan(p, State{}, Busy{}, utc("2026-05-01T01:00:00Z"))
	require.Equal(t, utc("2026-05-01T03:00:00Z"), d.Start)
	require.Equal(t, Window{utc("2026-05-01T03:00:00Z"), utc("2026-05-01T05:00:00Z")}, d.Window)
	require.Equal(t, utc("2026-05-01T03:00:00Z"), d.Handles)
	require.Empty(t, d.Deferred)

	// Inside the window, the start is now.
	d = Plan(p, State{}, Busy{}, utc("2026-05-01T04:00:00Z"))
	require.Equal(t, utc("2026-05-01T04:00:00Z"), d.Start)

	// Once the fire is handled, the next window.
	d = Plan(p, State{LastPlannedFire: utc("2026-05-01T03:00:00Z")}, Busy{}, utc("2026-05-01T04:00:00Z"))
	require.Equal(t, utc("2026-05-02T03:00:00Z"), d.Start)
	require.True(t, d.Missed.IsZero())
}

func TestPlanRunsAndGuards(t *testing.T) {
	t.Parallel()
	run := OneOffRun{Name: "soak", Start: utc("2026-05-01T02:30:00Z"), Duration: time.Hour} // until 03:30
	now := utc("2026-05-01T01:00:00Z")

	d := Plan(daily(), State{}, Busy{OneOff: []OneOffRun{run}}, now)
	require.Equal(t, utc("2026-05-01T03:30:00Z"), d.Start, "starts as the run ends: touching is not overlapping")

	p := daily()
	p.GuardBefore, p.GuardAfter = 15*time.Minute, 20*time.Minute
	d = Plan(p, State{}, Busy{OneOff: []OneOffRun{run}}, now)
	require.Equal(t, utc("2026-05-01T03:50:00Z"), d.Start, "guard_after widens the end")

	// guard_before: a run at 03:15 leaves no 10m slot at 03:00 once widened by 15m.
	later := OneOffRun{Name: "spike", Start: utc("2026-05-01T03:15:00Z"), Duration: 5 * time.Minute}
	d = Plan(p, State{}, Busy{OneOff: []OneOffRun{later}}, now)
	require.Equal(t, utc("2026-05-01T03:40:00Z"), d.Start)
	d = Plan(daily(), State{}, Busy{OneOff: []OneOffRun{later}}, now)
	require.Equal(t, utc("2026-05-01T03:00:00Z"), d.Start, "without guards [03:00, 03:10) is free")

	// The start must be in the window; the rotation may run past its end.
	tail := OneOffRun{Name: "tail", Start: utc("2026-05-01T03:00:00Z"), Duration: 115 * time.Minute}
	d = Plan(daily(), State{}, Busy{OneOff: []OneOffRun{tail}}, now)
	require.Equal(t, utc("2026-05-01T04:55:00Z"), d.Start)
	require.True(t, d.Start.Add(10*time.Minute).After(d.Window.End))
}

// A run of no length with no guards holds no instant: it blocks nothing,
// one-off or recurring alike. (The state database refuses such runs; the
// planner must still agree with itself. Found by TestUpcomingProperties
// with -rapid.seed=6703272478126189341: the one-off path blocked on an
// empty interval and the recurring path did not.)
func TestPlanEmptyRunBlocksNothing(t *testing.T) {
	t.Parallel()
	require.False(t, Interval{Start: utc("2026-05-01T03:05:00Z"), End: utc("2026-05-01T03:05:00Z")}.
		Overlaps(utc("2026-05-01T03:00:00Z"), utc("2026-05-01T03:10:00Z")))
	now := utc("2026-05-01T01:00:00Z")
	empty := OneOffRun{Name: "blip", Start: utc("2026-05-01T03:05:00Z")}
	d := Plan(daily(), State{}, Busy{OneOff: []OneOffRun{empty}}, now)
	require.Equal(t, utc("2026-05-01T03:00:00Z"), d.Start)
	require.Empty(t, d.Blockers)
	every := RecurringRun{Name: "blips", Schedule: MustParse("5 3 * * *", ""), Duration: 0}
	require.Equal(t, d, Plan(daily(), State{}, Busy{Recurring: []RecurringRun{every}}, now))

	// With a guard it is no longer empty, and it blocks.
	p := daily()
	p.GuardAfter = 5 * time.Minute
	require.Equal(t, utc("2026-05-01T03:10:00Z"), Plan(p, State{}, Busy{OneOff: []OneOffRun{empty}}, now).Start)
	require.Equal(t, utc("2026-05-01T03:10:00Z"), Plan(p, State{}, Busy{Recurring: []RecurringRun{every}}, now).Start)
}

func TestPlanRecurringRunDefers(t *testing.T) {
	t.Parallel()
	nightly := RecurringRun{Name: "nightly-load", Schedule: MustParse("0 2 * * *", ""), Duration: 4 * time.Hour}
	p := daily()
	p.Schedule = MustParse("0 3 * * 1-5", "") // weekdays
	now := utc("2026-05-01T00:00:00Z")        // a Friday
	d := Plan(p, State{}, Busy{Recurring: []RecurringRun{nightly}}, now)
	require.True(t, d.Start.IsZero(), "the nightly run covers every window")
	require.Len(t, d.Deferred, 21, "every weekday window of the next 31 days")
	last := d.Deferred[len(d.Deferred)-1].Window.Start
	require.Equal(t, utc("2026-05-29T03:00:00Z"), last)
	require.Equal(t, 31*24*time.Hour, Horizon(p))
	require.Equal(t, 12*28*24*time.Hour, Horizon(Timing{Schedule: MustParse("@monthly", "")}))
	require.Equal(t, MaxPlanHorizon, Horizon(Timing{Schedule: MustParse("@yearly", "")}))
	require.Equal(t, last, d.Handles)

	nightly.Duration = 90 * time.Minute // 02:00–03:30
	d = Plan(p, State{}, Busy{Recurring: []RecurringRun{nightly}}, now)
	require.Equal(t, utc("2026-05-01T03:30:00Z"), d.Start)

	nightly.Duration = 2*time.Hour + 55*time.Minute // until 04:55: a start at 04:55 is still in the window
	d = Plan(p, State{}, Busy{Recurring: []RecurringRun{nightly}}, now)
	require.Equal(t, utc("2026-05-01T04:55:00Z"), d.Start)

	nightly.Duration = 3 * time.Hour // 02:00–05:00, Fridays only
	nightly.Schedule = MustParse("0 2 * * 5", "")
	d = Plan(p, State{}, Busy{Recurring: []RecurringRun{nightly}}, now)
	require.Equal(t, utc("2026-05-04T03:00:00Z"), d.Start, "Friday deferred, Monday free")
	require.Len(t, d.Deferred, 1)
	def := d.Deferred[0]
	require.Equal(t, Window{utc("2026-05-01T03:00:00Z"), utc("2026-05-01T05:00:00Z")}, def.Window)
	require.Equal(t, []Interval{{Start: utc("2026-05-01T02:00:00Z"), End: utc("2026-05-01T05:00:00Z"), Kind: KindRun, Name: "nightly-load"}}, def.Blockers)
	require.Equal(t, utc("2026-05-04T03:00:00Z"), d.Handles)
}

func TestPlanLeases(t *testing.T) {
	t.Parallel()
	now := utc("2026-05-01T03:05:00Z") // inside the window
	p := daily()
	p.GuardAfter = 5 * time.Minute

	live := Lease{Name: "ci-42", Started: utc("2026-05-01T02:50:00Z"), LastHeartbeat: utc("2026-05-01T03:04:30Z"), TTL: time.Minute}
	d := Plan(p, State{}, Busy{Leases: []Lease{live}}, now)
	require.Equal(t, utc("2026-05-01T03:10:30Z"), d.Start, "busy until heartbeat+TTL, plus guard_after")

	expired := live
	expired.LastHeartbeat = utc("2026-05-01T03:03:00Z") // +1m TTL = 03:04, before now
	require.True(t, expired.Expired(now))
	d = Plan(p, State{}, Busy{Leases: []Lease{expired}}, now)
	require.Equal(t, now, d.Start, "a lease whose heartbeats stopped blocks nothing")

	ended := live
	ended.TTL = time.Hour
	ended.Ended = ptr(utc("2026-05-01T03:20:00Z"))
	d = Plan(p, State{}, Busy{Leases: []Lease{ended}}, now)
	require.Equal(t, utc("2026-05-01T03:25:00Z"), d.Start, "an ended lease blocks until its end plus guard_after, not until heartbeat+TTL")

	// A heartbeat exactly TTL old has expired.
	edge := live
	edge.LastHeartbeat = now.Add(-time.Minute)
	require.True(t, edge.Expired(now))
	_, ok := edge.Interval(now, Guard{})
	require.False(t, ok)
}

func TestPlanDenyWindowsInTheirOwnZone(t *testing.T) {
	t.Parallel()
	p := daily()
	p.Schedule = MustParse("0 8 * * *", "") // 08:00 UTC
	// Berlin business hours 09:00–17:00 local: in May (CEST) 07:00–15:00 UTC.
	p.Deny = []DenyWindow{{Name: "berlin-office", Schedule: MustParse("0 9 * * *", "Europe/Berlin"), Duration: 8 * time.Hour}}
	p.Window = 8 * time.Hour
	now := utc("2026-05-01T00:00:00Z")
	d := Plan(p, State{}, Busy{}, now)
	require.Equal(t, utc("2026-05-01T15:00:00Z"), d.Start)

	// In January (CET) the deny window is 08:00–16:00 UTC and fills the
	// policy's window [08:00, 16:00) every day, until Berlin moves to CEST on
	// 2026-03-29. Guards widen runs, not deny windows: widened, it would
	// block forever.
	p.GuardBefore, p.GuardAfter = time.Hour, time.Hour
	d = Plan(p, State{}, Busy{}, utc("2026-03-15T00:00:00Z"))
	require.Equal(t, utc("2026-03-29T15:00:00Z"), d.Start)
	require.Len(t, d.Deferred, 14)
	require.Equal(t, Interval{Start: utc("2026-03-15T08:00:00Z"), End: utc("2026-03-15T16:00:00Z"), Kind: KindDeny, Name: "berlin-office"}, d.Deferred[0].Blockers[0])

	p.Window = 9 * time.Hour
	d = Plan(p, State{}, Busy{}, utc("2026-01-15T00:00:00Z"))
	require.Equal(t, utc("2026-01-15T16:00:00Z"), d.Start)

	// A global deny window (in Busy) applies too.
	global := DenyWindow{Name: "freeze", Schedule: MustParse("0 16 * * *", ""), Duration: 30 * time.Minute}
	d = Plan(p, State{}, Busy{Deny: []DenyWindow{global}}, utc("2026-01-15T00:00:00Z"))
	require.Equal(t, utc("2026-01-15T16:30:00Z"), d.Start)
}

func TestPlanOverdue(t *testing.T) {
	t.Parallel()
	blocker := RecurringRun{Name: "always", Schedule: MustParse("0 0 * * *", ""), Duration: 24 * time.Hour}
	busy := Busy{Recurring: []RecurringRun{blocker}}
	p := daily()
	p.MaxAge = 72 * time.Hour
	now := utc("2026-05-10T03:30:00Z")

	// alert: flagged, still deferred.
	st := State{LastRotated: utc("2026-05-06T03:00:00Z"), LastPlannedFire: utc("2026-05-09T03:00:00Z")}
	d := Plan(p, st, busy, now)
	require.True(t, d.Overdue)
	require.Equal(t, utc("2026-05-09T03:00:00Z"), d.OverdueAt)
	require.False(t, d.Forced)
	require.True(t, d.Start.IsZero())
	require.NotEmpty(t, d.Deferred)

	// force, inside a window: now, ignoring the run, which is reported.
	p.OnOverdue = OverdueForce
	d = Plan(p, st, busy, now)
	require.True(t, d.Forced)
	require.Equal(t, now, d.Start)
	require.Equal(t, Window{utc("2026-05-10T03:00:00Z"), utc("2026-05-10T05:00:00Z")}, d.Window)
	require.Equal(t, utc("2026-05-10T03:00:00Z"), d.Handles)
	require.Len(t, d.Blockers, 1)
	require.Equal(t, "always", d.Blockers[0].Name)

	// force, outside any window: now all the same.
	outside := utc("2026-05-10T12:00:00Z")
	st.LastPlannedFire = utc("2026-05-10T03:00:00Z")
	d = Plan(p, st, busy, outside)
	require.True(t, d.Forced)
	require.Equal(t, outside, d.Start)
	require.True(t, d.Window.IsZero())

	// Not yet overdue: exactly MaxAge old is not past it.
	d = Plan(p, State{LastRotated: now.Add(-72 * time.Hour)}, busy, now)
	require.False(t, d.Overdue)
	require.False(t, d.Forced)

	// Never rotated: not overdue.
	d = Plan(p, State{}, busy, now)
	require.False(t, d.Overdue)
	require.True(t, d.OverdueAt.IsZero())
}

func TestPlanMissed(t *testing.T) {
	t.Parallel()
	p := daily()
	st := State{LastRotated: utc("2026-05-01T03:00:00Z"), LastPlannedFire: utc("2026-05-01T03:00:00Z")}
	now := utc("2026-05-03T09:00:00Z") // the 05-02 and 05-03 windows passed with no daemon
	run := OneOffRun{Name: "soak", Start: utc("2026-05-03T08:00:00Z"), Duration: 2 * time.Hour}
	busy := Busy{OneOff: []OneOffRun{run}}

	d := Plan(p, st, busy, now)
	require.Equal(t, Window{utc("2026-05-03T03:00:00Z"), utc("2026-05-03T05:00:00Z")}, d.Missed, "the most recent missed window")
	require.False(t, d.ASAP)
	require.Equal(t, utc("2026-05-04T03:00:00Z"), d.Start, "next_window")

	p.Missed = MissedASAP
	d = Plan(p, st, busy, now)
	require.True(t, d.ASAP)
	require.Equal(t, utc("2026-05-03T10:00:00Z"), d.Start, "asap, after the run")
	require.True(t, d.Window.IsZero())
	require.Equal(t, utc("2026-05-03T03:00:00Z"), d.Handles)

	// asap finds nothing within one period: falls back to the windows.
	long := OneOffRun{Name: "marathon", Start: utc("2026-05-03T08:00:00Z"), Duration: 30 * time.Hour}
	d = Plan(p, st, Busy{OneOff: []OneOffRun{long}}, now)
	require.False(t, d.ASAP)
	require.Equal(t, utc("2026-05-05T03:00:00Z"), d.Start, "the run covers 05-04's window, too")
	require.Len(t, d.Deferred, 1)
}

func TestUpcoming(t *testing.T) {
	t.Parallel()
	p := daily()
	run := OneOffRun{Name: "soak", Start: utc("2026-05-02T02:00:00Z"), Duration: 4 * time.Hour}
	list := Upcoming(p, State{}, Busy{OneOff: []OneOffRun{run}}, utc("2026-05-01T00:00:00Z"), 3)
	require.Len(t, list, 3)
	require.Equal(t, utc("2026-05-01T03:00:00Z"), list[0].Start)
	require.True(t, list[1].Deferred())
	require.Equal(t, []Interval{{Start: utc("2026-05-02T02:00:00Z"), End: utc("2026-05-02T06:00:00Z"), Kind: KindRun, Name: "soak"}}, list[1].Blockers)
	require.Equal(t, utc("2026-05-03T03:00:00Z"), list[2].Start)
}

func TestCalendarMatchesPlan(t *testing.T) {
	t.Parallel()
	a, b := daily(), daily()
	a.Name, b.Name = "a", "b"
	runs := Busy{
		OneOff: []OneOffRun{
			{Name: "r2", Start: utc("2026-05-01T03:00:00Z"), Duration: time.Hour, Policies: []string{"a"}},
			{Name: "r1", Start: utc("2026-05-01T02:00:00Z"), Duration: 90 * time.Minute, Policies: []string{"a", "b"}},
		},
		Leases: []Lease{{Name: "l", Started: utc("2026-05-01T03:00:00Z"), LastHeartbeat: utc("2026-05-01T00:59:00Z"), TTL: 3 * time.Hour, Policies: []string{"b"}}},
		Deny:   []DenyWindow{{Name: "g", Schedule: MustParse("30 4 * * *", ""), Duration: 10 * time.Minute}},
	}
	now := utc("2026-05-01T01:00:00Z")
	got := PlanAll([]Timing{a, b, {Name: "c", Schedule: a.Schedule, Window: time.Hour}}, nil, NewCalendar(runs), now)
	require.Equal(t, utc("2026-05-01T04:00:00Z"), got[0].Start)
	require.Equal(t, utc("2026-05-01T03:59:00Z"), got[1].Start, "r1 until 03:30, the lease until heartbeat+TTL = 03:59")
	require.Equal(t, utc("2026-05-01T03:00:00Z"), got[2].Start)
	require.Equal(t, got[0], Plan(a, State{}, runs, now), "an unsorted hand-built Busy plans the same")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, daily().Validate())
	p := daily()
	p.Window = 25 * time.Hour
	p.GuardAfter = -time.Second
	p.OnOverdue = "panic"
	p.Missed = "never"
	err := p.Validate()
	require.ErrorContains(t, err, `policy "checkout-db": window: 25h0m0s is longer than the schedule's period 24h0m0s`)
	require.ErrorContains(t, err, "guard_after: must not be negative")
	require.ErrorContains(t, err, `on_overdue: "panic"`)
	require.ErrorContains(t, err, `missed: "never"`)
	require.ErrorContains(t, Timing{Name: "x"}.Validate(), "schedule: missing")
}

// The shared deny index of PlanAll stops at maxExpand occurrences; beyond
// that the planner must expand the windows itself, not see a free calendar.
func TestPlanAllDenyIndexTruncation(t *testing.T) {
	t.Parallel()
	p := Timing{Name: "yearly", Schedule: MustParse("0 12 1 6 *", ""), Window: time.Hour, ExpectedDuration: 20 * time.Second}
	every := DenyWindow{Name: "every-minute-odd", Schedule: MustParse("* * * * *", ""), Duration: 30 * time.Second}
	now := utc("2026-01-01T00:00:00Z") // the first window is five months and >200,000 occurrences away
	cal := NewCalendar(Busy{Deny: []DenyWindow{every}})
	want := Plan(p, State{}, cal.For(p.Name), now)
	require.Equal(t, utc("2026-06-01T12:00:30Z"), want.Start)
	require.Equal(t, want, PlanAll([]Timing{p}, nil, cal, now)[0])
}

func TestBlockersAt(t *testing.T) {
	t.Parallel()

	start := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	p := Timing{Name: "p", Schedule: MustParse("@hourly", "UTC"), Window: 30 * time.Minute,
		ExpectedDuration: 10 * time.Minute, GuardAfter: 5 * time.Minute}
	run := OneOffRun{Name: "soak", Start: start.Add(-time.Hour), Duration: 58 * time.Minute}
	b := Busy{OneOff: []OneOffRun{run}}

	blockers := BlockersAt(p, b, start)
	require.Len(t, blockers, 1, "the run ends at 11:58, its guard at 12:03")
	require.Equal(t, "soak", blockers[0].Name)
	require.Equal(t, start.Add(3*time.Minute), blockers[0].End)
	require.Empty(t, BlockersAt(p, b, start.Add(3*time.Minute)), "free once the guard has passed")
}
