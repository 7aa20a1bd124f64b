package schedule

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// Interval kinds.
const (
	KindRun   = "run"   // a scheduled Locust run, widened by the policy's guards
	KindLease = "lease" // a live Locust run holding a lease, widened by the guards
	KindDeny  = "deny"  // a deny window
)

// Interval is a half-open span [Start, End) during which no rotation may run.
// Kind is KindRun, KindLease or KindDeny; Name names the run, lease or deny
// window. Intervals that blocked a rotation are reported as the planner saw
// them: widened by the guards for runs and leases.
type Interval struct {
	Start, End time.Time
	Kind       string
	Name       string
}

// Overlaps reports whether [i.Start, i.End) and [start, end) share an
// instant. Intervals that only touch at an end point do not overlap, and an
// empty interval overlaps nothing: a run of no length with no guards
// blocks no instant, whether it is one-off or recurring (expand skips the
// recurring ones for the same reason).
func (i Interval) Overlaps(start, end time.Time) bool {
	return i.Start.Before(i.End) && i.Start.Before(end) && start.Before(i.End)
}

// Guard is how far a run is widened: Before is added ahead of its start,
// After behind its end.
type Guard struct {
	Before, After time.Duration
}

// OneOffRun is a Locust run scheduled once: busy [Start, Start+Duration).
// Policies names the policies whose credentials it uses; only [Calendar]
// reads it.
type OneOffRun struct {
	Name     string
	Start    time.Time
	Duration time.Duration
	Policies []string
}

// Interval returns the run's busy interval widened by g.
func (r OneOffRun) Interval(g Guard) Interval {
	return Interval{
		Start: r.Start.Add(-g.Before),
		End:   r.Start.Add(r.Duration + g.After),
		Kind:  KindRun,
		Name:  r.Name,
	}
}

// RecurringRun is a Locust run that starts at every fire of Schedule and
// lasts Duration.
type RecurringRun struct {
	Name     string
	Schedule Schedule
	Duration time.Duration
	Policies []string
}

// maxExpand bounds one expansion of a recurring source, so a "* * * * *"
// run queried over a year cannot exhaust memory.
const maxExpand = 10000

// Intervals returns the occurrences, widened by g, that overlap [from, to),
// in order of start.
func (r RecurringRun) Intervals(from, to time.Time, g Guard) []Interval {
	return r.appendIntervals(nil, from, to, g)
}

func (r RecurringRun) appendIntervals(dst []Interval, from, to time.Time, g Guard) []Interval {
	return expand(dst, r.Schedule, r.Duration, from, to, g, KindRun, r.Name)
}

// expand appends the occurrences s of sched (busy [s-g.Before,
// s+d+g.After)) that overlap [from, to): s > from-d-g.After and
// s < to+g.Before.
func expand(dst []Interval, sched Schedule, d time.Duration, from, to time.Time, g Guard, kind, name string) []Interval {
	if d <= 0 && g.Before+g.After <= 0 {
		return dst
	}
	last := to.Add(g.Before)
	n := 0
	for s := sched.Next(from.Add(-d - g.After)); !s.IsZero() && s.Before(last) && n < maxExpand; s = sched.Next(s) {
		iv := Interval{Start: s.Add(-g.Before), End: s.Add(d + g.After), Kind: kind, Name: name}
		if iv.Overlaps(from, to) {
			dst = append(dst, iv)
		}
		n++
	}
	return dst
}

// Lease is a live Locust run: `swarmkey exec` or the Locust plugin took it
// at Started and renews LastHeartbeat; Ended is set when the run ends
// cleanly.
type Lease struct {
	Name          string
	Started       time.Time
	LastHeartbeat time.Time
	TTL           time.Duration
	Ended         *time.Time
	Policies      []string
}

// Expired reports whether, at now, the lease has no Ended and its last
// heartbeat is TTL or more old: the run is presumed dead.
func (l Lease) Expired(now time.Time) bool {
	return l.Ended == nil && !now.Before(l.LastHeartbeat.Add(l.TTL))
}

// Interval returns the lease's busy interval at now, widened by g: from
// Started until Ended, or until LastHeartbeat+TTL while no Ended is set. An
// expired lease returns false: it blocks nothing.
func (l Lease) Interval(now time.Time, g Guard) (Interval, bool) {
	if l.Expired(now) {
		return Interval{}, false
	}
	end := l.LastHeartbeat.Add(l.TTL)
	if l.Ended != nil {
		end = *l.Ended
	}
	if !end.After(l.Started) {
		return Interval{}, false
	}
	return Interval{Start: l.Started.Add(-g.Before), End: end.Add(g.After), Kind: KindLease, Name: l.Name}, true
}

// DenyWindow forbids rotations for Duration from every fire of Schedule, in
// the schedule's own zone. Deny windows are not widened by guards.
type DenyWindow struct {
	Name     string
	Schedule Schedule
	Duration time.Duration
}

// Intervals returns the deny intervals that overlap [from, to), in order.
func (w DenyWindow) Intervals(from, to time.Time) []Interval {
	return expand(nil, w.Schedule, w.Duration, from, to, Guard{}, KindDeny, w.Name)
}

// Busy is what can block one policy's rotation: the runs and leases that use
// its credential and the global deny windows (the policy's own deny windows
// are in [Timing].Deny). The Policies fields of its runs are not read. Build
// one by hand for a single [Plan], or take it from a [Calendar], which keeps
// the one-off runs sorted for binary search.
type Busy struct {
	OneOff    []OneOffRun
	Recurring []RecurringRun
	Leases    []Lease
	Deny      []DenyWindow

	sorted    bool           // OneOff is sorted by Start (set by Calendar)
	maxOneOff time.Duration  // longest OneOff duration when sorted
	denyIndex *intervalIndex // Deny expanded in advance (set by PlanAll)
}

// intervalIndex holds every interval of some sources that overlaps
// [from, to), sorted by start, so that many policies share one expansion.
type intervalIndex struct {
	from, to time.Time
	ivs      []Interval
	maxLen   time.Duration
}

func newIntervalIndex(ws []DenyWindow, from, to time.Time) *intervalIndex {
	x := &intervalIndex{from: from, to: to}
	for _, w := range ws {
		x.maxLen = max(x.maxLen, w.Duration)
		n := 0
		for s := w.Schedule.Next(from.Add(-w.Duration)); !s.IsZero() && s.Before(to); s = w.Schedule.Next(s) {
			if n == maxExpand {
				// Truncated: every interval overlapping [from, s) is in;
				// later queries fall back to expanding the windows.
				x.to = minTime(x.to, s)
				break
			}
			x.ivs = append(x.ivs, Interval{Start: s, End: s.Add(w.Duration), Kind: KindDeny, Name: w.Name})
			n++
		}
	}
	slices.SortFunc(x.ivs, func(a, b Interval) int { return a.Start.Compare(b.Start) })
	return x
}

// covers reports whether the index holds every interval overlapping [from, to).
func (x *intervalIndex) covers(from, to time.Time) bool {
	return x != nil && !from.Before(x.from) && !to.After(x.to)
}

func (x *intervalIndex) appendOverlapping(dst []Interval, from, to time.Time) []Interval {
	lo := from.Add(-x.maxLen)
	i := sort.Search(len(x.ivs), func(i int) bool { return x.ivs[i].Start.After(lo) })
	for ; i < len(x.ivs) && x.ivs[i].Start.Before(to); i++ {
		if x.ivs[i].Overlaps(from, to) {
			dst = append(dst, x.ivs[i])
		}
	}
	return dst
}

// Calendar indexes every run, lease and global deny window by policy, so
// that planning thousands of policies reads only each policy's own runs.
// It is read-only once built and safe for concurrent use.
type Calendar struct {
	index map[string]int32
	busy  []Busy
	deny  []DenyWindow
}

// NewCalendar indexes all: each run and lease is filed under every policy in
// its Policies (one naming no policy blocks none), and all.Deny applies to
// every policy.
func NewCalendar(all Busy) *Calendar {
	c := &Calendar{index: make(map[string]int32), deny: all.Deny}
	// Pass 1: number the policies and count their runs; remember each
	// (run, policy) pair's number so pass 2 does no map lookups.
	type counts struct{ oneOff, recurring, leases int }
	var cnt []counts
	var ids []int32
	id := func(name string) int32 {
		i, ok := c.index[name]
		if !ok {
			i = int32(len(cnt))
			c.index[name] = i
			cnt = append(cnt, counts{})
		}
		ids = append(ids, i)
		return i
	}
	for _, r := range all.OneOff {
		for _, p := range r.Policies {
			cnt[id(p)].oneOff++
		}
	}
	for _, r := range all.Recurring {
		for _, p := range r.Policies {
			cnt[id(p)].recurring++
		}
	}
	for _, l := range all.Leases {
		for _, p := range l.Policies {
			cnt[id(p)].leases++
		}
	}
	// Pass 2: carve each policy's slices out of one backing array per kind.
	oneOff := make([]OneOffRun, 0, len(ids))
	recurring := make([]RecurringRun, 0, len(ids))
	leases := make([]Lease, 0, len(ids))
	c.busy = make([]Busy, len(cnt))
	for i, n := range cnt {
		c.busy[i] = Busy{
			OneOff:    oneOff[len(oneOff) : len(oneOff) : len(oneOff)+n.oneOff],
			Recurring: recurring[len(recurring) : len(recurring) : len(recurring)+n.recurring],
			Leases:    leases[len(leases) : len(leases) : len(leases)+n.leases],
			Deny:      all.Deny,
		}
		oneOff = oneOff[:len(oneOff)+n.oneOff]
		recurring = recurring[:len(recurring)+n.recurring]
		leases = leases[:len(leases)+n.leases]
	}
	k := 0
	for _, r := range all.OneOff {
		for range r.Policies {
			b := &c.busy[ids[k]]
			b.OneOff = append(b.OneOff, r)
			k++
		}
	}
	for _, r := range all.Recurring {
		for range r.Policies {
			b := &c.busy[ids[k]]
			b.Recurring = append(b.Recurring, r)
			k++
		}
	}
	for _, l := range all.Leases {
		for range l.Policies {
			b := &c.busy[ids[k]]
			b.Leases = append(b.Leases, l)
			k++
		}
	}
	for i := range c.busy {
		c.busy[i].sortOneOff()
	}
	return c
}

// For returns the Busy of the named policy.
func (c *Calendar) For(policy string) Busy {
	if i, ok := c.index[policy]; ok {
		return c.busy[i]
	}
	return Busy{Deny: c.deny, sorted: true}
}

func (b *Busy) sortOneOff() {
	slices.SortFunc(b.OneOff, func(x, y OneOffRun) int { return x.Start.Compare(y.Start) })
	b.maxOneOff = 0
	for _, r := range b.OneOff {
		b.maxOneOff = max(b.maxOneOff, r.Duration)
	}
	b.sorted = true
}

// busyIndex answers "which busy intervals overlap [from, to)" for one policy.
type busyIndex struct {
	b      Busy
	policy []DenyWindow
	guard  Guard
	now    time.Time
	buf    *[]Interval // scratch, reused by every collect
}

func newBusyIndex(p Timing, b Busy, now time.Time, scratch *[]Interval) busyIndex {
	if !b.sorted {
		b.OneOff = slices.Clone(b.OneOff)
		b.sortOneOff()
	}
	return busyIndex{
		b:      b,
		policy: p.Deny,
		guard:  Guard{Before: p.GuardBefore, After: p.GuardAfter},
		now:    now,
		buf:    scratch,
	}
}

// collect returns the busy intervals overlapping [from, to), sorted by
// start. The slice is reused by the next call.
func (x *busyIndex) collect(from, to time.Time) []Interval {
	out := (*x.buf)[:0]
	g := x.guard
	runs := x.b.OneOff
	// A run overlaps iff Start-Before < to and Start+Duration+After > from.
	lo := from.Add(-x.b.maxOneOff - g.After)
	hi := to.Add(g.Before)
	i := sort.Search(len(runs), func(i int) bool { return runs[i].Start.After(lo) })
	for ; i < len(runs) && runs[i].Start.Before(hi); i++ {
		if iv := runs[i].Interval(g); iv.Overlaps(from, to) {
			out = append(out, iv)
		}
	}
	for _, r := range x.b.Recurring {
		out = r.appendIntervals(out, from, to, g)
	}
	for _, l := range x.b.Leases {
		if iv, ok := l.Interval(x.now, g); ok && iv.Overlaps(from, to) {
			out = append(out, iv)
		}
	}
	for _, w := range x.policy {
		out = expand(out, w.Schedule, w.Duration, from, to, Guard{}, KindDeny, w.Name)
	}
	if x.b.denyIndex.covers(from, to) {
		out = x.b.denyIndex.appendOverlapping(out, from, to)
	} else {
		for _, w := range x.b.Deny {
			out = expand(out, w.Schedule, w.Duration, from, to, Guard{}, KindDeny, w.Name)
		}
	}
	slices.SortFunc(out, func(a, b Interval) int {
		return cmp.Or(a.Start.Compare(b.Start), a.End.Compare(b.End))
	})
	*x.buf = out
	return out
}

// earliest returns the earliest t in [lo, hi) such that [t, t+dur) overlaps
// none of ivs (sorted by start). dur must be positive.
func earliest(ivs []Interval, lo, hi time.Time, dur time.Duration) (time.Time, bool) {
	t := lo
	for _, iv := range ivs {
		if !t.Before(hi) {
			return time.Time{}, false
		}
		if !iv.End.After(t) {
			continue // ends at or before t
		}
		if !iv.Start.Before(t.Add(dur)) {
			break // this and every later interval starts at or after t+dur
		}
		t = iv.End
	}
	if !t.Before(hi) {
		return time.Time{}, false
	}
	return t, true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// BlockersAt returns the busy intervals (runs and leases widened by the
// policy's guards, deny windows) that a rotation of p starting at start and
// lasting p.ExpectedDuration (at least an instant) would touch, sorted by
// start. The daemon asks it right before a rotation starts and right before
// set, the point of no return.
func BlockersAt(p Timing, b Busy, start time.Time) []Interval {
	var scratch []Interval
	x := newBusyIndex(p, b, start, &scratch)
	end := start.Add(max(p.ExpectedDuration, time.Nanosecond))
	return slices.Clone(x.collect(start, end))
}
