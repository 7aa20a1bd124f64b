package schedule

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

var propZones = []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"}

// propEpoch is near the 2026 transitions so daylight saving is exercised.
var propEpoch = utc("2026-03-20T00:00:00Z")

func genDuration(t *rapid.T, label string, max time.Duration) time.Duration {
	return time.Duration(rapid.Int64Range(0, int64(max/time.Minute)).Draw(t, label)) * time.Minute
}

func genInstant(t *rapid.T, label string, around time.Time, span time.Duration) time.Time {
	return around.Add(time.Duration(rapid.Int64Range(-int64(span/time.Minute), int64(span/time.Minute)).Draw(t, label)) * time.Minute)
}

// genRunSpec draws a realistic schedule for a run or a deny window.
func genRunSpec(t *rapid.T, label string) Schedule {
	m := rapid.IntRange(0, 59).Draw(t, label+"-m")
	h := rapid.IntRange(0, 23).Draw(t, label+"-h")
	spec := rapid.SampledFrom([]string{
		fmt.Sprintf("%d %d * * *", m, h),
		fmt.Sprintf("%d %d * * %d", m, h, rapid.IntRange(0, 6).Draw(t, label+"-d")),
		fmt.Sprintf("%d */%d * * *", m, rapid.IntRange(2, 12).Draw(t, label+"-s")),
		fmt.Sprintf("%d %d * * 1-5", m, h),
	}).Draw(t, label)
	return MustParse(spec, rapid.SampledFrom(propZones).Draw(t, label+"-zone"))
}

type propCase struct {
	p    Timing
	st   State
	b    Busy
	now  time.Time
	desc string
}

func genCase(t *rapid.T) propCase {
	var c propCase
	spec := genSpec(t)
	zone := rapid.SampledFrom(propZones).Draw(t, "zone")
	sched := MustParse(spec, zone)
	per := sched.Period()
	c.p = Timing{
		Name:             "p",
		Schedule:         sched,
		Window:           time.Duration(rapid.Int64Range(1, int64(per/time.Minute)).Draw(t, "window")) * time.Minute,
		ExpectedDuration: genDuration(t, "expected", 3*time.Hour),
		GuardBefore:      genDuration(t, "guard-before", time.Hour),
		GuardAfter:       genDuration(t, "guard-after", time.Hour),
		MaxAge:           genDuration(t, "max-age", 10*24*time.Hour),
		OnOverdue:        rapid.SampledFrom([]string{"", OverdueAlert, OverdueForce}).Draw(t, "on-overdue"),
		Missed:           rapid.SampledFrom([]string{"", MissedNextWindow, MissedASAP}).Draw(t, "missed"),
	}
	require.NoError(t, c.p.Validate())
	c.now = genInstant(t, "now", propEpoch, 20*24*time.Hour)
	if rapid.Bool().Draw(t, "rotated") {
		c.st.LastRotated = genInstant(t, "last-rotated", c.now.Add(-5*24*time.Hour), 5*24*time.Hour)
	}
	if rapid.Bool().Draw(t, "planned") {
		c.st.LastPlannedFire = sched.Prev(genInstant(t, "last-planned", c.now.Add(-3*per), 3*per))
	}
	// Half the one-off runs sit near one of the next fires, where they
	// decide the start; the others anywhere in the coming days.
	fire := sched.Next(c.now.Add(-c.p.Window))
	for i, n := 0, rapid.IntRange(0, 8).Draw(t, "one-off"); i < n; i++ {
		start := genInstant(t, "run-start", c.now.Add(24*time.Hour), 3*24*time.Hour)
		if rapid.Bool().Draw(t, "run-near-fire") {
			near := fire
			for k := rapid.IntRange(0, 3).Draw(t, "run-fire"); k > 0; k-- {
				near = sched.Next(near)
			}
			start = genInstant(t, "run-offset", near.Add(c.p.Window/2), c.p.Window/2+2*time.Hour)
		}
		c.b.OneOff = append(c.b.OneOff, OneOffRun{
			Name:     fmt.Sprintf("run%d", i),
			Start:    start,
			Duration: genDuration(t, "run-duration", 12*time.Hour),
		})
	}
	for i, n := 0, rapid.IntRange(0, 2).Draw(t, "recurring"); i < n; i++ {
		c.b.Recurring = append(c.b.Recurring, RecurringRun{
			Name:     fmt.Sprintf("rec%d", i),
			Schedule: genRunSpec(t, "rec-spec"),
			Duration: genDuration(t, "rec-duration", 6*time.Hour),
		})
	}
	for i, n := 0, rapid.IntRange(0, 3).Draw(t, "leases"); i < n; i++ {
		started := genInstant(t, "lease-started", c.now.Add(-2*time.Hour), 2*time.Hour)
		l := Lease{
			Name:          fmt.Sprintf("lease%d", i),
			Started:       started,
			LastHeartbeat: started.Add(genDuration(t, "lease-hb", 4*time.Hour)),
			TTL:           genDuration(t, "lease-ttl", 2*time.Hour),
		}
		if rapid.Bool().Draw(t, "lease-ended") {
			e := l.LastHeartbeat.Add(genDuration(t, "lease-end", time.Hour))
			l.Ended = &e
		}
		c.b.Leases = append(c.b.Leases, l)
	}
	for i, n := 0, rapid.IntRange(0, 2).Draw(t, "deny"); i < n; i++ {
		w := DenyWindow{Name: fmt.Sprintf("deny%d", i), Schedule: genRunSpec(t, "deny-spec"), Duration: genDuration(t, "deny-duration", 8*time.Hour) + time.Minute}
		if rapid.Bool().Draw(t, "deny-global") {
			c.b.Deny = append(c.b.Deny, w)
		} else {
			c.p.Deny = append(c.p.Deny, w)
		}
	}
	c.desc = fmt.Sprintf("policy %s (%s) window %s dur %s guards %s/%s now %s", spec, zone, c.p.Window, c.p.ExpectedDuration, c.p.GuardBefore, c.p.GuardAfter, c.now)
	return c
}

// oracle expands every busy source over [from, to) the plain way, without
// the planner's index.
func (c propCase) oracle(from, to time.Time) []Interval {
	g := Guard{Before: c.p.GuardBefore, After: c.p.GuardAfter}
	var out []Interval
	keep := func(iv Interval) {
		if iv.Overlaps(from, to) {
			out = append(out, iv)
		}
	}
	for _, r := range c.b.OneOff {
		keep(r.Interval(g))
	}
	for _, r := range c.b.Recurring {
		for _, s := range r.Schedule.Fires(from.Add(-r.Duration-g.After-time.Hour), to.Add(g.Before+time.Hour), 0) {
			keep(OneOffRun{Name: r.Name, Start: s, Duration: r.Duration}.Interval(g))
		}
	}
	for _, l := range c.b.Leases {
		if l.Expired(c.now) {
			continue
		}
		end := l.LastHeartbeat.Add(l.TTL)
		if l.Ended != nil {
			end = *l.Ended
		}
		if end.After(l.Started) {
			keep(Interval{Start: l.Started.Add(-g.Before), End: end.Add(g.After), Kind: KindLease, Name: l.Name})
		}
	}
	for _, w := range append(append([]DenyWindow(nil), c.p.Deny...), c.b.Deny...) {
		for _, s := range w.Schedule.Fires(from.Add(-w.Duration-time.Hour), to.Add(time.Hour), 0) {
			keep(Interval{Start: s, End: s.Add(w.Duration), Kind: KindDeny, Name: w.Name})
		}
	}
	return out
}

func (c propCase) dur() time.Duration { return max(c.p.ExpectedDuration, time.Nanosecond) }

// free reports whether [t, t+dur) overlaps none of ivs.
func (c propCase) free(ivs []Interval, t time.Time) bool {
	for _, iv := range ivs {
		if iv.Overlaps(t, t.Add(c.dur())) {
			return false
		}
	}
	return true
}

// checkEarliest: start is free, and no candidate earlier than start in
// [lo, hi) is (candidates: lo and every busy end in between).
func (c propCase) checkEarliest(t *rapid.T, ivs []Interval, lo, hi, start time.Time) {
	require.True(t, c.free(ivs, start), "start %s overlaps a busy interval", start)
	require.False(t, start.Before(lo))
	require.True(t, start.Before(hi))
	cands := []time.Time{lo}
	for _, iv := range ivs {
		if !iv.End.Before(lo) && iv.End.Before(hi) {
			cands = append(cands, iv.End)
		}
	}
	for _, x := range cands {
		if x.Before(start) {
			require.False(t, c.free(ivs, x), "earlier start %s is free, planner chose %s", x, start)
		}
	}
}

// checkWindow verifies one window's plan against the oracle.
func (c propCase) checkWindow(t *rapid.T, wp WindowPlan) {
	w := wp.Window
	require.True(t, c.p.Schedule.Prev(w.Start).Equal(w.Start), "window start %s is not a fire", w.Start)
	require.Equal(t, w.Start.Add(c.p.Window), w.End)
	lo := w.Start
	if c.now.After(lo) {
		lo = c.now
	}
	reach := w.End.Add(c.dur())
	ivs := c.oracle(lo, reach)
	if !wp.Deferred() {
		c.checkEarliest(t, ivs, lo, w.End, wp.Start)
		return
	}
	require.NotEmpty(t, wp.Blockers, "a deferral names its blockers")
	for _, b := range wp.Blockers {
		require.True(t, b.Overlaps(lo, reach), "blocker %+v does not overlap the window's reach [%s, %s)", b, lo, reach)
		require.Contains(t, ivs, b, "blocker %+v is not a busy interval", b)
	}
	for _, x := range append([]time.Time{lo}, ends(ivs)...) {
		if !x.Before(lo) && x.Before(w.End) {
			require.False(t, c.free(ivs, x), "window %s deferred but %s is free", w.Start, x)
		}
	}
}

func ends(ivs []Interval) []time.Time {
	out := make([]time.Time, len(ivs))
	for i, iv := range ivs {
		out[i] = iv.End
	}
	return out
}

func TestPlanProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		c := genCase(t)
		d := Plan(c.p, c.st, c.b, c.now)
		overdue := c.p.MaxAge > 0 && !c.st.LastRotated.IsZero() && c.now.Sub(c.st.LastRotated) > c.p.MaxAge
		require.Equal(t, overdue, d.Overdue, c.desc)
		switch {
		case d.Forced:
			require.True(t, overdue && c.p.OnOverdue == OverdueForce)
			require.Equal(t, c.now, d.Start)
			require.ElementsMatch(t, c.oracle(c.now, c.now.Add(c.dur())), d.Blockers)
		case d.ASAP:
			require.False(t, d.Missed.IsZero())
			require.Equal(t, MissedASAP, c.p.Missed)
			hi := c.now.Add(c.p.Schedule.Period())
			c.checkEarliest(t, c.oracle(c.now, hi.Add(c.dur())), c.now, hi, d.Start)
		default:
			require.False(t, overdue && c.p.OnOverdue == OverdueForce)
			// Deferred windows then the chosen one are consecutive fires
			// from the first unhandled open window.
			from := c.now.Add(-c.p.Window)
			if c.st.LastPlannedFire.After(from) {
				from = c.st.LastPlannedFire
			}
			f := c.p.Schedule.Next(from)
			for _, def := range d.Deferred {
				require.Equal(t, f, def.Window.Start, c.desc)
				c.checkWindow(t, def)
				f = c.p.Schedule.Next(f)
			}
			if !d.Start.IsZero() {
				require.Equal(t, f, d.Window.Start, c.desc)
				require.True(t, d.Window.Contains(d.Start), "start outside its window: %s", c.desc)
				require.False(t, d.Start.Before(c.now))
				c.checkWindow(t, WindowPlan{Window: d.Window, Start: d.Start})
			}
		}
		// PlanAll (Calendar, shared deny index) agrees with Plan.
		all := c.b
		all.OneOff, all.Recurring, all.Leases = nil, nil, nil
		for _, r := range c.b.OneOff {
			r.Policies = []string{c.p.Name, "other"}
			all.OneOff = append(all.OneOff, r)
		}
		for _, r := range c.b.Recurring {
			r.Policies = []string{c.p.Name}
			all.Recurring = append(all.Recurring, r)
		}
		for _, l := range c.b.Leases {
			l.Policies = []string{"other", c.p.Name}
			all.Leases = append(all.Leases, l)
		}
		require.Equal(t, d, PlanAll([]Timing{c.p}, []State{c.st}, NewCalendar(all), c.now)[0], c.desc)

		// Missed: the latest fire whose window ended, if after LastPlannedFire.
		if !d.Missed.IsZero() {
			require.False(t, c.st.LastPlannedFire.IsZero())
			require.True(t, d.Missed.Start.After(c.st.LastPlannedFire))
			require.False(t, d.Missed.End.After(c.now))
			next := c.p.Schedule.Next(d.Missed.Start)
			require.True(t, next.Add(c.p.Window).After(c.now), "a later window also ended: Missed is not the most recent")
		}
	})
}

func TestUpcomingProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		c := genCase(t)
		list := Upcoming(c.p, c.st, c.b, c.now, 6)
		require.Len(t, list, 6)
		for i, wp := range list {
			if i > 0 {
				require.Equal(t, c.p.Schedule.Next(list[i-1].Window.Start), wp.Window.Start)
			}
			require.True(t, wp.Window.End.After(c.now))
			c.checkWindow(t, wp)
		}
	})
}
