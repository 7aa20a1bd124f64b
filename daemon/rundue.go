package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// Blockers returns what blocks policy from starting a rotation at now, and
// the next instant from which nothing does (searched up to a year ahead;
// zero if none).
func Blockers(ctx context.Context, db *state.DB, set *PolicySet, policy string, now time.Time) ([]schedule.Interval, time.Time, error) {
	p, ok := set.Policies[policy]
	if !ok {
		return nil, time.Time{}, fmt.Errorf("unknown policy %q", policy)
	}
	cal, err := set.Calendar(ctx, db, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	b := cal.For(policy)
	blockers := schedule.BlockersAt(*p.Plan, b, now)
	t := now
	for range 1000 {
		found := schedule.BlockersAt(*p.Plan, b, t)
		if len(found) == 0 {
			return blockers, t, nil
		}
		for _, iv := range found {
			t = maxTime(t, iv.End)
		}
		if t.Sub(now) > 366*24*time.Hour {
			break
		}
	}
	return blockers, time.Time{}, nil
}

// DueOutcome says what run-due did with one policy.
type DueOutcome string

const (
	DueRotated  DueOutcome = "rotated"
	DueNotDue   DueOutcome = "not due"
	DueDeferred DueOutcome = "deferred"
	DueBusy     DueOutcome = "in progress elsewhere"
	DueFailed   DueOutcome = "failed"
)

// DueResult is run-due's report on one policy.
type DueResult struct {
	Policy  string
	Outcome DueOutcome
	// Overdue: the credential is older than the policy's max_age.
	Overdue bool
	// Next is the next planned slot (not due, deferred).
	Next   time.Time
	Detail string
	// Err is why the policy failed (DueFailed): its Open (a reference that
	// does not resolve, a store that cannot be opened) or its rotation.
	Err    error
	Result rotator.Result
}

// RunDue rotates, in this process, every policy whose planned slot has
// come, one after another, and reports on every policy. It takes the same
// per-policy locks and request keys as the daemon, so it is safe beside a
// running daemon: a fire rotates once, whoever gets there first.
func RunDue(ctx context.Context, db *state.DB, set *PolicySet, logger *slog.Logger, now time.Time) ([]DueResult, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	states := make([]state.PolicyState, 0, len(set.Policies))
	names := make([]string, 0, len(set.Policies))
	for name, p := range set.Policies {
		states = append(states, state.PolicyState{Policy: name, Strategy: p.Strategy, Store: p.Store, SecretID: p.SecretID})
		names = append(names, name)
	}
	sort.Strings(names)
	if err := db.EnsurePolicies(ctx, states); err != nil {
		return nil, err
	}
	planStates, err := db.PlanStates(ctx)
	if err != nil {
		return nil, err
	}
	cal, err := set.Calendar(ctx, db, now)
	if err != nil {
		return nil, err
	}
	clock := func() time.Time { return time.Now().UTC() }
	rot := rotator.New(db, rotator.Config{Logger: logger, Now: clock})

	var out []DueResult
	for _, name := range names {
		p := set.Policies[name]
		st := planStates[name]
		dec := schedule.Plan(*p.Plan, schedule.State{LastRotated: deref(st.RotatedAt), LastPlannedFire: deref(st.PlannedFire)}, cal.For(name), now)
		r := DueResult{Policy: name, Overdue: dec.Overdue && !dec.Forced}
		switch {
		case dec.Start.IsZero():
			r.Outcome, r.Detail = DueDeferred, "no allowed start within the planning horizon"
			if len(dec.Deferred) > 0 {
				r.Detail = "blocked by " + blockerNames(dec.Deferred[len(dec.Deferred)-1].Blockers)
			}
		case dec.Start.After(now):
			r.Outcome, r.Next = DueNotDue, dec.Start
			if len(dec.Deferred) > 0 {
				r.Outcome = DueDeferred
				r.Detail = "blocked by " + blockerNames(dec.Deferred[len(dec.Deferred)-1].Blockers)
			}
		default:
			r = runDueOne(ctx, db, rot, set, name, p, dec, clock, r)
			if r.Outcome == DueRotated {
				handles := dec.Handles
				if err := db.UpdatePlans(ctx, []state.PlanUpdate{{Policy: name, PlannedFire: &handles, NextCheck: clock()}}); err != nil {
					return out, err
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func runDueOne(ctx context.Context, db *state.DB, rot *rotator.Rotator, set *PolicySet, name string, p Scheduled,
	dec schedule.Decision, clock func() time.Time, r DueResult) DueResult {
	policy, err := p.Open(ctx)
	if err != nil {
		r.Outcome, r.Detail, r.Err = DueFailed, err.Error(), err
		return r
	}
	defer policy.Target.Close()
	opts := rotator.Options{Actor: "run-due", Force: dec.Forced, RequestKey: FireKey(name, dec.Handles)}
	if !dec.Forced {
		opts.BeforeSet = (&blockCheck{db: db, set: set, policy: name, plan: *p.Plan, now: clock}).check
	}
	res, err := rot.Rotate(ctx, policy, opts)
	r.Result = res
	var inProgress *rotator.InProgressError
	switch {
	case err == nil:
		r.Outcome = DueRotated
		if res.AlreadyDone {
			r.Detail = "already rotated for this fire"
		}
	case errors.As(err, &inProgress):
		r.Outcome, r.Detail = DueBusy, err.Error()
	case errors.Is(err, rotator.ErrDeferred):
		r.Outcome, r.Detail = DueDeferred, err.Error()
	default:
		r.Outcome, r.Detail, r.Err = DueFailed, err.Error(), err
	}
	return r
}
