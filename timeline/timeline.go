// Package timeline is the read-only timeline page: one row per policy across
// the coming days (schedule fires, windows, the chosen slots, deferrals and
// what caused them, Locust runs, live leases and deny windows as bands, the
// last outcome), the needs-attention list on top, and a page per policy with
// its history and audit entries.
//
// Gathering (Gather, GatherPolicy) is apart from rendering (Render,
// RenderPolicy), so that `serve --http-listen` (Handler) and
// `swarmkey plan --html FILE` show the same page from the same data. The
// data is what the daemon plans with (daemon.Upcoming, PolicySet.Calendar)
// and what the state database records (policy state, rotations, audit):
// no store is ever opened, so no credential value can reach a page. The
// HTML is html/template's, with inline SVG and CSS and no script.
package timeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// DefaultSpan is how far ahead the page looks unless told otherwise.
const DefaultSpan = 3 * 24 * time.Hour

// Band kinds: what may block a rotation, as the planner sees it.
const (
	KindRun   = schedule.KindRun
	KindLease = schedule.KindLease
	KindDeny  = schedule.KindDeny
)

// Attention kinds: why a policy is on the needs-attention list.
const (
	AttentionNeeded  = "needs_attention" // its last rotation spent its attempts
	AttentionOverdue = "overdue"         // its credential is older than max_age
)

// maxBandsPerRow bounds one row's bands (a run every minute over days):
// beyond it the row says how many were left out.
const maxBandsPerRow = 2000

// Options say what to gather.
type Options struct {
	// Now is the planning instant; From defaults to it.
	Now, From, To time.Time
	// Policies restricts the rows to these names; nil means every policy.
	Policies []string
	// Location is the zone times are shown in; nil means UTC.
	Location *time.Location
	// Static: the page is a file (plan --html), with no policy pages to
	// link to.
	Static bool
}

// Timeline is everything the overview page shows.
type Timeline struct {
	Generated, From, To time.Time
	Location            *time.Location
	Static              bool
	// Attention lists the policies an operator should look at, worst first.
	Attention []Attention
	Rows      []Row
	// Busy are the runs, leases and deny windows in view, unwidened, with
	// the policies each blocks.
	Busy []Busy
}

// Attention is one entry of the needs-attention list.
type Attention struct {
	Policy, Kind string
	// Since is when the policy last rotated (zero: never).
	Since time.Time
	// Detail is the last error (needs_attention) or the age (overdue).
	Detail string
}

// Row is one policy across the period.
type Row struct {
	Policy    string
	Strategy  string
	Tags      []string
	Schedule  string
	Window    time.Duration
	RotatedAt *time.Time
	// LastOutcome is the last rotation's outcome ("" before the first).
	LastOutcome string
	LastError   string
	Overdue     bool
	Fires       []Fire
	// Bands are what may block this policy: runs and leases widened by its
	// guards, deny windows (its own and the global ones).
	Bands []Band
	// BandsLeftOut counts the bands past maxBandsPerRow.
	BandsLeftOut int
}

// Fire is one schedule fire: its window, and the chosen slot or the
// deferral.
type Fire struct {
	WindowStart, WindowEnd time.Time
	// Slot is the chosen start; nil when the fire is deferred.
	Slot *time.Time
	// BlockedBy deferred the fire; PushedBy moved its slot after the
	// window's start.
	BlockedBy, PushedBy []Band
}

// Deferred reports whether no slot was found in the window.
func (f Fire) Deferred() bool { return f.Slot == nil }

// Band is a busy interval.
type Band struct {
	Kind, Name string
	Start, End time.Time
}

// Busy is a run, lease or deny window in view, as recorded (not widened).
type Busy struct {
	Band
	Policies []string
	// Live: a lease whose holder still heartbeats.
	Live bool
}

// Policy is everything the policy page shows.
type Policy struct {
	Timeline
	Row         Row
	ExpectedDur time.Duration
	GuardBefore time.Duration
	GuardAfter  time.Duration
	MaxAge      time.Duration
	Store       string
	SecretID    string
	State       state.PolicyState
	History     []state.Rotation
	Audit       []state.AuditEntry
}

// HistoryLimit and AuditLimit bound the policy page's tables.
const (
	HistoryLimit = 50
	AuditLimit   = 100
)

// auditScan is how many of a policy's audit entries are read to show the
// newest AuditLimit (state.Audit reads oldest first).
const auditScan = 10000

// Gather reads what the overview page shows for set's policies (or
// o.Policies) over [o.From, o.To).
func Gather(ctx context.Context, db *state.DB, set *daemon.PolicySet, o Options) (*Timeline, error) {
	if o.From.IsZero() {
		o.From = o.Now
	}
	if o.To.IsZero() {
		o.To = o.From.Add(DefaultSpan)
	}
	if !o.To.After(o.From) {
		return nil, fmt.Errorf("timeline: the end %s is not after the start %s", o.To.Format(time.RFC3339), o.From.Format(time.RFC3339))
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	names := o.Policies
	if names == nil {
		for name := range set.Policies {
			names = append(names, name)
		}
	}
	names = slices.Clone(names)
	slices.Sort(names)
	for _, name := range names {
		if _, ok := set.Policies[name]; !ok {
			return nil, fmt.Errorf("timeline: unknown policy %q", name)
		}
	}

	states, err := db.PolicyStatesOf(ctx, set.StateReadOf(names))
	if err != nil {
		return nil, err
	}
	upcoming, err := daemon.Upcoming(ctx, db, set, names, o.From, o.To)
	if err != nil {
		return nil, err
	}
	cal, err := set.Calendar(ctx, db, o.From)
	if err != nil {
		return nil, err
	}
	fires := map[string][]Fire{}
	for _, u := range upcoming {
		fires[u.Policy] = append(fires[u.Policy], Fire{WindowStart: u.WindowStart, WindowEnd: u.WindowEnd, Slot: u.Slot,
			BlockedBy: bands(u.BlockedBy), PushedBy: bands(u.PushedBy)})
	}

	t := &Timeline{Generated: o.Now, From: o.From, To: o.To, Location: o.Location, Static: o.Static}
	busy := map[Band]*Busy{}
	for _, name := range names {
		p := set.Policies[name]
		st := states[name]
		row := Row{Policy: name, Strategy: p.Strategy, Tags: p.Tags, Schedule: p.Plan.Schedule.String(), Window: p.Plan.Window,
			RotatedAt: st.RotatedAt, LastOutcome: st.LastOutcome, LastError: st.LastError, Fires: fires[name]}
		if p.Plan.MaxAge > 0 && st.RotatedAt != nil && o.Now.Sub(*st.RotatedAt) > p.Plan.MaxAge {
			row.Overdue = true
			t.Attention = append(t.Attention, Attention{Policy: name, Kind: AttentionOverdue, Since: *st.RotatedAt,
				Detail: fmt.Sprintf("the credential is %s old; max_age is %s", o.Now.Sub(*st.RotatedAt).Round(time.Minute), p.Plan.MaxAge)})
		}
		if st.LastOutcome == string(state.OutcomeNeedsAttention) {
			a := Attention{Policy: name, Kind: AttentionNeeded, Detail: st.LastError}
			if st.RotatedAt != nil {
				a.Since = *st.RotatedAt
			}
			t.Attention = append(t.Attention, a)
		}
		b := cal.For(name)
		row.Bands, row.BandsLeftOut = rowBands(*p.Plan, b, o.From, o.To)
		collectBusy(busy, name, *p.Plan, b, o.From, o.To)
		t.Rows = append(t.Rows, row)
	}
	// needs_attention before overdue: a spent rotation waits for a human,
	// an overdue one may still rotate by itself.
	slices.SortStableFunc(t.Attention, func(a, b Attention) int {
		return cmp.Or(cmp.Compare(attentionRank(a.Kind), attentionRank(b.Kind)), cmp.Compare(a.Policy, b.Policy))
	})
	for _, b := range busy {
		slices.Sort(b.Policies)
		t.Busy = append(t.Busy, *b)
	}
	slices.SortFunc(t.Busy, func(a, b Busy) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return t, nil
}

func attentionRank(kind string) int {
	if kind == AttentionNeeded {
		return 0
	}
	return 1
}

// GatherPolicy reads what the page of one policy shows.
func GatherPolicy(ctx context.Context, db *state.DB, set *daemon.PolicySet, name string, o Options) (*Policy, error) {
	p, ok := set.Policies[name]
	if !ok {
		return nil, fmt.Errorf("timeline: unknown policy %q", name)
	}
	o.Policies = []string{name}
	t, err := Gather(ctx, db, set, o)
	if err != nil {
		return nil, err
	}
	page := &Policy{Timeline: *t, Row: t.Rows[0], ExpectedDur: p.Plan.ExpectedDuration, GuardBefore: p.Plan.GuardBefore,
		GuardAfter: p.Plan.GuardAfter, MaxAge: p.Plan.MaxAge, Store: p.Store, SecretID: p.SecretID}
	// A policy never rotated has no state yet: its page shows none.
	if page.State, err = db.PolicyState(ctx, name); err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	if page.History, err = db.History(ctx, name, HistoryLimit); err != nil {
		return nil, fmt.Errorf("read the history of %q: %w", name, err)
	}
	audit, err := db.Audit(ctx, name, auditScan)
	if err != nil {
		return nil, err
	}
	slices.Reverse(audit)
	page.Audit = audit[:min(len(audit), AuditLimit)]
	return page, nil
}

func bands(ivs []schedule.Interval) []Band {
	out := make([]Band, 0, len(ivs))
	for _, iv := range ivs {
		out = append(out, Band{Kind: iv.Kind, Name: iv.Name, Start: iv.Start, End: iv.End})
	}
	return out
}

// rowBands returns the busy intervals of one policy that overlap
// [from, to), widened by its guards as the planner widens them, with the
// overlapping intervals of one source merged; and how many were left out.
func rowBands(p schedule.Timing, b schedule.Busy, from, to time.Time) ([]Band, int) {
	g := schedule.Guard{Before: p.GuardBefore, After: p.GuardAfter}
	var ivs []schedule.Interval
	for _, r := range b.OneOff {
		if iv := r.Interval(g); iv.Overlaps(from, to) {
			ivs = append(ivs, iv)
		}
	}
	for _, r := range b.Recurring {
		ivs = append(ivs, r.Intervals(from, to, g)...)
	}
	for _, l := range b.Leases {
		if iv, ok := l.Interval(from, g); ok && iv.Overlaps(from, to) {
			ivs = append(ivs, iv)
		}
	}
	for _, w := range slices.Concat(p.Deny, b.Deny) {
		ivs = append(ivs, w.Intervals(from, to)...)
	}
	out := merge(bands(ivs))
	if len(out) > maxBandsPerRow {
		return out[:maxBandsPerRow], len(out) - maxBandsPerRow
	}
	return out, 0
}

// merge joins the overlapping or touching bands of one source (kind and
// name): a run every five minutes that lasts ten is one band.
func merge(in []Band) []Band {
	slices.SortFunc(in, func(a, b Band) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), a.Start.Compare(b.Start))
	})
	var out []Band
	for _, b := range in {
		if n := len(out); n > 0 && out[n-1].Kind == b.Kind && out[n-1].Name == b.Name && !b.Start.After(out[n-1].End) {
			if b.End.After(out[n-1].End) {
				out[n-1].End = b.End
			}
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Band) int { return a.Start.Compare(b.Start) })
	return out
}

// collectBusy files the runs, leases and deny windows of policy that touch
// [from, to), unwidened, under their own identity.
func collectBusy(busy map[Band]*Busy, policy string, p schedule.Timing, b schedule.Busy, from, to time.Time) {
	add := func(band Band, live bool, policy string) {
		e, ok := busy[band]
		if !ok {
			e = &Busy{Band: band, Live: live}
			busy[band] = e
		}
		if policy != "" && !slices.Contains(e.Policies, policy) {
			e.Policies = append(e.Policies, policy)
		}
	}
	for _, r := range b.OneOff {
		if iv := r.Interval(schedule.Guard{}); iv.Overlaps(from, to) {
			add(Band{Kind: KindRun, Name: r.Name, Start: iv.Start, End: iv.End}, false, policy)
		}
	}
	for _, r := range b.Recurring {
		ivs := r.Intervals(from, to, schedule.Guard{})
		if len(ivs) > 0 {
			// One line per recurring run: its first occurrence in view.
			add(Band{Kind: KindRun, Name: r.Name + " (recurring)", Start: ivs[0].Start, End: ivs[0].End}, false, policy)
		}
	}
	for _, l := range b.Leases {
		if iv, ok := l.Interval(from, schedule.Guard{}); ok && iv.Overlaps(from, to) {
			add(Band{Kind: KindLease, Name: l.Name, Start: iv.Start, End: iv.End}, l.Ended == nil, policy)
		}
	}
	for _, w := range p.Deny {
		if ivs := w.Intervals(from, to); len(ivs) > 0 {
			add(Band{Kind: KindDeny, Name: w.Name + " (recurring)", Start: ivs[0].Start, End: ivs[0].End}, false, policy)
		}
	}
	// Global deny windows apply to every policy; listing every policy
	// under each would say nothing.
	for _, w := range b.Deny {
		if ivs := w.Intervals(from, to); len(ivs) > 0 {
			add(Band{Kind: KindDeny, Name: w.Name + " (recurring, every policy)", Start: ivs[0].Start, End: ivs[0].End}, false, "")
		}
	}
}
