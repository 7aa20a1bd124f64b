package schedule

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Values of Policy.OnOverdue.
const (
	OverdueAlert = "alert" // report Overdue, keep planning around busy intervals (the default)
	OverdueForce = "force" // rotate now, busy or not
)

// Values of Policy.Missed.
const (
	MissedNextWindow = "next_window" // plan in the next window (the default)
	MissedASAP       = "asap"        // plan at the earliest free moment from now
)

// Timing is the planning half of a rotation policy.
type Timing struct {
	Name     string
	Schedule Schedule
	// Window is how long after a fire a rotation may start.
	Window time.Duration
	// ExpectedDuration is how long a rotation occupies; [t, t+ExpectedDuration)
	// must be free of busy intervals. Zero means the start instant alone.
	ExpectedDuration time.Duration
	// GuardBefore and GuardAfter widen every run and lease of this policy.
	GuardBefore, GuardAfter time.Duration
	// MaxAge bounds deferral: a credential older than MaxAge is overdue.
	// Zero disables it.
	MaxAge time.Duration
	// OnOverdue is OverdueAlert ("" means alert) or OverdueForce.
	OnOverdue string
	// Missed is MissedNextWindow ("" means next_window) or MissedASAP.
	Missed string
	// Deny are the policy's own deny windows, added to the global ones.
	Deny []DenyWindow
}

// Validate reports every problem with p's planning fields, joined.
func (p Timing) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("policy %q: %s: %s", p.Name, field, fmt.Sprintf(format, args...)))
	}
	if p.Schedule.IsZero() {
		bad("schedule", "missing")
	}
	switch {
	case p.Window <= 0:
		bad("window", "must be positive, got %s", p.Window)
	case !p.Schedule.IsZero() && p.Window > p.Schedule.Period():
		bad("window", "%s is longer than the schedule's period %s; windows of consecutive fires would overlap", p.Window, p.Schedule.Period())
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"expected_duration", p.ExpectedDuration}, {"guard_before", p.GuardBefore}, {"guard_after", p.GuardAfter}, {"max_age", p.MaxAge}} {
		if d.v < 0 {
			bad(d.field, "must not be negative, got %s", d.v)
		}
	}
	if p.OnOverdue != "" && p.OnOverdue != OverdueAlert && p.OnOverdue != OverdueForce {
		bad("on_overdue", "%q is not %q or %q", p.OnOverdue, OverdueAlert, OverdueForce)
	}
	if p.Missed != "" && p.Missed != MissedNextWindow && p.Missed != MissedASAP {
		bad("missed", "%q is not %q or %q", p.Missed, MissedNextWindow, MissedASAP)
	}
	for _, w := range p.Deny {
		if w.Schedule.IsZero() {
			bad("deny "+w.Name, "schedule missing")
		}
		if w.Duration <= 0 {
			bad("deny "+w.Name, "duration must be positive, got %s", w.Duration)
		}
	}
	return errors.Join(errs...)
}

// State is what the caller remembers about a policy between plans.
type State struct {
	// LastRotated is when the current credential was promoted; zero means
	// never.
	LastRotated time.Time
	// LastPlannedFire is the latest fire already handled: rotated in its
	// window, or recorded as deferred or missed. Zero means none. Fires at or
	// before it are never planned again.
	LastPlannedFire time.Time
}

// Window is the span [Start, End) after a fire in which a rotation may
// start; Start is the fire.
type Window struct {
	Start, End time.Time
}

// IsZero reports whether w is the zero Window (no window).
func (w Window) IsZero() bool { return w.Start.IsZero() }

// Contains reports whether t lies in [w.Start, w.End).
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// WindowPlan is the outcome of one fire: a start, or the busy intervals that
// deferred it.
type WindowPlan struct {
	Window Window
	// Start is the earliest allowed start in Window; zero when deferred.
	Start time.Time
	// Blockers, when deferred, are the busy intervals overlapping the
	// window's reach [max(fire, now), Window.End+ExpectedDuration), sorted by
	// start.
	Blockers []Interval
}

// Deferred reports whether no start was found in the window.
func (w WindowPlan) Deferred() bool { return w.Start.IsZero() }

// Decision is the planner's answer for one policy at one instant.
type Decision struct {
	Policy string
	// Start is when the rotation should begin; Start ≤ now means now. Zero
	// means no allowed start within the planning horizon (see Deferred).
	Start time.Time
	// Window is the window Start lies in; zero for a forced or asap start
	// outside every window.
	Window Window
	// Handles is the fire this decision disposes of: once the rotation
	// starts (or, when Start is zero, once the deferrals are recorded) the
	// caller stores it as State.LastPlannedFire.
	Handles time.Time
	// Forced: the policy is overdue with on_overdue force, so Start is now
	// and busy intervals were ignored; Blockers lists the ones overridden.
	Forced bool
	// ASAP: a missed window with missed: asap; Start is the earliest free
	// moment from now, inside a window or not.
	ASAP bool
	// Overdue: now − LastRotated > MaxAge.
	Overdue bool
	// OverdueAt is LastRotated+MaxAge; zero when MaxAge is zero or the
	// credential was never rotated. A daemon holding a future Start should
	// re-plan at OverdueAt: a force policy then rotates at once.
	OverdueAt time.Time
	// Missed is the most recent window that ended, unhandled, before now;
	// zero when none (or when LastPlannedFire is zero: a new policy has
	// missed nothing).
	Missed Window
	// Deferred lists, oldest first, the windows before Window that had no
	// free start.
	Deferred []WindowPlan
	// Blockers (Forced only) are the busy intervals overlapping the forced
	// rotation [now, now+ExpectedDuration).
	Blockers []Interval
}

// Planning bounds: Plan looks at most MaxPlanFires fires, and no further
// ahead than [Horizon].
const (
	MaxPlanFires   = 1000
	MinPlanHorizon = 31 * 24 * time.Hour
	MaxPlanHorizon = 366 * 24 * time.Hour
)

// Horizon is how far ahead of now Plan searches for a window: twelve
// periods of the schedule, but at least 31 days and at most 366 (a daily
// policy is searched for 31 days, a monthly one for a year, a yearly one for
// a year). A policy blocked that long needs an operator, not a later slot:
// its Decision has no Start and lists every deferred window.
func Horizon(p Timing) time.Duration {
	return min(MaxPlanHorizon, max(MinPlanHorizon, 12*p.Schedule.Period()))
}

// Plan decides when policy p rotates next, at now. In order:
//
//  1. Overdue: when MaxAge > 0 and now − LastRotated > MaxAge (a credential
//     never rotated is not overdue: its age is unknown, and forcing on first
//     deployment would break runs). With on_overdue "force" the Decision is
//     Forced with Start = now, whether or not now is inside a window (it
//     names that window if so), ignoring busy intervals; the intervals it
//     overrides are in Blockers for the audit. With "alert" it is only
//     flagged and planning continues.
//  2. Missed: the latest fire whose window ended at or before now is later
//     than LastPlannedFire. It is reported in Missed. With missed "asap" the
//     start is the earliest free t ≥ now within one period of the schedule;
//     if none is free that soon, planning continues as for next_window.
//  3. Windows: starting with the first fire f > LastPlannedFire whose window
//     has not ended (f+Window > now), each window is searched for the
//     earliest t ≥ max(f, now), t < f+Window, with [t, t+ExpectedDuration)
//     free. A window without one is appended to Deferred. The search stops
//     at the first start found, after MaxPlanFires fires or beyond
//     now+Horizon(p); then Start is zero.
//
// p must be valid ([Timing.Validate]).
func Plan(p Timing, st State, b Busy, now time.Time) Decision {
	var scratch []Interval
	pl := newPlanner(p, b, now, &scratch)
	return pl.plan(st)
}

// Upcoming lists the next n fires (f > LastPlannedFire, f+Window > now) with
// their starts or blockers, each window planned independently as if the
// earlier ones had been deferred. It is what `swarmkey plan` prints; it
// ignores max_age and missed windows, which [Plan] reports.
func Upcoming(p Timing, st State, b Busy, now time.Time, n int) []WindowPlan {
	var scratch []Interval
	pl := newPlanner(p, b, now, &scratch)
	out := make([]WindowPlan, 0, n)
	for f := pl.firstFire(st); !f.IsZero() && len(out) < n; f = p.Schedule.Next(f) {
		out = append(out, pl.window(f))
	}
	return out
}

// PlanAll plans every policy at now: Decision i is Plan(policies[i],
// states[i], cal.For(policies[i].Name), now). states may be nil (every State
// zero) or as long as policies.
//
// The global deny windows are expanded once for all policies, over the
// longest span any policy's plan can query, and the policies are split
// across GOMAXPROCS goroutines: plans are independent and the Calendar is
// read-only.
func PlanAll(policies []Timing, states []State, cal *Calendar, now time.Time) []Decision {
	if states != nil && len(states) != len(policies) {
		panic(fmt.Sprintf("schedule.PlanAll: %d states for %d policies", len(states), len(policies)))
	}
	var reach time.Duration
	for _, p := range policies {
		reach = max(reach, Horizon(p)+p.Schedule.Period()+p.Window+p.ExpectedDuration+time.Nanosecond)
	}
	deny := newIntervalIndex(cal.deny, now, now.Add(reach))
	out := make([]Decision, len(policies))
	planRange := func(lo, hi int) {
		var scratch []Interval
		fires := &fireMemo{}
		for i := lo; i < hi; i++ {
			var st State
			if states != nil {
				st = states[i]
			}
			p := policies[i]
			b := cal.For(p.Name)
			b.denyIndex = deny
			pl := newPlanner(p, b, now, &scratch)
			pl.fires = fires
			out[i] = pl.plan(st)
		}
	}
	const minChunk = 500
	workers := min(runtime.GOMAXPROCS(0), (len(policies)+minChunk-1)/minChunk)
	if workers <= 1 {
		planRange(0, len(policies))
		return out
	}
	var wg sync.WaitGroup
	chunk := (len(policies) + workers - 1) / workers
	for lo := 0; lo < len(policies); lo += chunk {
		hi := min(lo+chunk, len(policies))
		wg.Go(func() { planRange(lo, hi) })
	}
	wg.Wait()
	return out
}

type planner struct {
	p   Timing
	now time.Time
	dur time.Duration // ExpectedDuration, at least 1ns so a start inside a busy interval overlaps it
	ix  busyIndex
	// fires memoizes the schedule's Next and Prev across the policies one
	// PlanAll goroutine plans; nil for a lone Plan.
	fires *fireMemo
}

// fireMemo memoizes Schedule.Next and Schedule.Prev by schedule and
// instant. Policies that share a schedule (a file of thousands holds a
// handful) and were handled alike ask the same questions, and a wall-clock
// Next costs a walk of the calendar and zone look-ups.
type fireMemo struct {
	next, prev map[fireKey]time.Time
}

type fireKey struct {
	spec      string
	loc, atIn *time.Location
	sec       int64
	nsec      int32
}

// maxFireMemo bounds each map; past it the map starts again.
const maxFireMemo = 4096

func (m *fireMemo) lookup(cache *map[fireKey]time.Time, s Schedule, t time.Time, f func(Schedule, time.Time) time.Time) time.Time {
	if m == nil {
		return f(s, t)
	}
	k := fireKey{spec: s.spec, loc: s.loc, atIn: t.Location(), sec: t.Unix(), nsec: int32(t.Nanosecond())}
	if v, ok := (*cache)[k]; ok {
		return v
	}
	if *cache == nil || len(*cache) >= maxFireMemo {
		*cache = make(map[fireKey]time.Time, 64)
	}
	v := f(s, t)
	(*cache)[k] = v
	return v
}

func (pl *planner) next(t time.Time) time.Time {
	if pl.fires == nil {
		return pl.p.Schedule.Next(t)
	}
	return pl.fires.lookup(&pl.fires.next, pl.p.Schedule, t, Schedule.Next)
}

func (pl *planner) prev(t time.Time) time.Time {
	if pl.fires == nil {
		return pl.p.Schedule.Prev(t)
	}
	return pl.fires.lookup(&pl.fires.prev, pl.p.Schedule, t, Schedule.Prev)
}

func newPlanner(p Timing, b Busy, now time.Time, scratch *[]Interval) planner {
	return planner{p: p, now: now, dur: max(p.ExpectedDuration, time.Nanosecond), ix: newBusyIndex(p, b, now, scratch)}
}

func (pl *planner) windowOf(f time.Time) Window {
	return Window{Start: f, End: f.Add(pl.p.Window)}
}

// firstFire is the first fire after LastPlannedFire whose window is open at
// now or later.
func (pl *planner) firstFire(st State) time.Time {
	from := pl.now.Add(-pl.p.Window)
	if st.LastPlannedFire.After(from) {
		from = st.LastPlannedFire
	}
	return pl.next(from)
}

// window plans the window of fire f.
func (pl *planner) window(f time.Time) WindowPlan {
	wp := pl.windowScratch(f)
	wp.Blockers = slices.Clone(wp.Blockers)
	return wp
}

// windowScratch is window with Blockers in the planner's scratch space,
// which the next collect reuses.
func (pl *planner) windowScratch(f time.Time) WindowPlan {
	w := pl.windowOf(f)
	lo := f
	if pl.now.After(lo) {
		lo = pl.now
	}
	ivs := pl.ix.collect(lo, w.End.Add(pl.dur))
	if t, ok := earliest(ivs, lo, w.End, pl.dur); ok {
		return WindowPlan{Window: w, Start: t}
	}
	return WindowPlan{Window: w, Blockers: ivs}
}

// containing returns the window of the latest fire ≤ t if it contains t.
func (pl *planner) containing(t time.Time) (Window, time.Time) {
	f := pl.prev(t)
	if f.IsZero() {
		return Window{}, f
	}
	if w := pl.windowOf(f); w.Contains(t) {
		return w, f
	}
	return Window{}, f
}

func (pl *planner) plan(st State) Decision {
	p, now := pl.p, pl.now
	d := Decision{Policy: p.Name}
	if p.MaxAge > 0 && !st.LastRotated.IsZero() {
		d.OverdueAt = st.LastRotated.Add(p.MaxAge)
		d.Overdue = now.After(d.OverdueAt)
	}
	if !st.LastPlannedFire.IsZero() {
		if m := pl.prev(now.Add(-p.Window)); !m.IsZero() && m.After(st.LastPlannedFire) {
			d.Missed = pl.windowOf(m)
		}
	}
	later := func(a, b time.Time) time.Time {
		if a.After(b) {
			return a
		}
		return b
	}

	if d.Overdue && p.OnOverdue == OverdueForce {
		d.Start, d.Forced = now, true
		var last time.Time
		d.Window, last = pl.containing(now)
		d.Handles = later(last, st.LastPlannedFire)
		d.Blockers = append([]Interval(nil), pl.ix.collect(now, now.Add(pl.dur))...)
		return d
	}

	if !d.Missed.IsZero() && p.Missed == MissedASAP {
		hi := now.Add(p.Schedule.Period())
		if t, ok := earliest(pl.ix.collect(now, hi.Add(pl.dur)), now, hi, pl.dur); ok {
			var last time.Time
			d.Start, d.ASAP = t, true
			d.Window, last = pl.containing(t)
			d.Handles = later(last, d.Missed.Start)
			return d
		}
	}

	end := now.Add(Horizon(p))
	f := pl.firstFire(st)
	for i := 0; i < MaxPlanFires && !f.IsZero() && f.Before(end); i++ {
		wp := pl.windowScratch(f)
		if !wp.Deferred() {
			d.Start, d.Window, d.Handles = wp.Start, wp.Window, f
			return d
		}
		if n := len(d.Deferred); n > 0 && slices.Equal(d.Deferred[n-1].Blockers, wp.Blockers) {
			// A long blocker (a freeze over many fires) defers window
			// after window for the same reasons: they share one list,
			// clipped so that an append to one copies it.
			wp.Blockers = d.Deferred[n-1].Blockers
		} else {
			wp.Blockers = slices.Clip(slices.Clone(wp.Blockers))
		}
		d.Deferred = append(d.Deferred, wp)
		d.Handles = f
		f = pl.next(f)
	}
	if d.Handles.IsZero() {
		d.Handles = later(d.Missed.Start, st.LastPlannedFire)
	}
	return d
}

// Equal reports whether p and q plan alike: the same fields, schedules and
// deny windows (schedules compared by spec and zone name).
func (p Timing) Equal(q Timing) bool {
	return p.Name == q.Name && p.Schedule.Equal(q.Schedule) && p.Window == q.Window &&
		p.ExpectedDuration == q.ExpectedDuration && p.GuardBefore == q.GuardBefore && p.GuardAfter == q.GuardAfter &&
		p.MaxAge == q.MaxAge && p.OnOverdue == q.OnOverdue && p.Missed == q.Missed &&
		slices.EqualFunc(p.Deny, q.Deny, DenyWindow.Equal)
}

// Equal reports whether w and v are the same deny window.
func (w DenyWindow) Equal(v DenyWindow) bool {
	return w.Name == v.Name && w.Schedule.Equal(v.Schedule) && w.Duration == v.Duration
}
