package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// Emergency rotation (`swarmkey rotate --tag T` / `--all`): after a leak,
// every credential of a team rotates at once, in this process (Local) or
// through the daemon, each as the operator's request. Leases, runs and deny
// windows still hold unless Force, as for `rotate NAME`.

// SelectPolicies returns the names of the policies that have one of tags
// (or every policy with all), sorted. A tag no policy has is an InputError
// naming --tag and the known tags.
func (r *Runtime) SelectPolicies(tags []string, all bool) ([]string, error) {
	var names []string
	for _, t := range tags {
		if !slices.ContainsFunc(r.Config.Policies, func(p config.Policy) bool { return slices.Contains(p.Tags, t) }) {
			var known []string
			for _, p := range r.Config.Policies {
				known = append(known, p.Tags...)
			}
			slices.Sort(known)
			if known = slices.Compact(known); len(known) == 0 {
				return nil, Inputf("--tag %q: no policy has it, nor any tag (tags: in the policy files)", t)
			}
			return nil, Inputf("--tag %q: no policy has it; known tags are %s", t, ListSome(known))
		}
	}
	for _, p := range r.Config.Policies {
		if all || slices.ContainsFunc(p.Tags, func(t string) bool { return slices.Contains(tags, t) }) {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return nil, Inputf("no policy is configured in %s: there is nothing to rotate", ListSome(r.Config.Files))
	}
	slices.Sort(names)
	return names, nil
}

// ManyOutcome is what became of one policy of an emergency rotation.
type ManyOutcome string

const (
	// ManyRotated: the policy's new credential is current.
	ManyRotated ManyOutcome = "rotated"
	// ManyFailed: the rotation failed (rolled back, or needs attention).
	ManyFailed ManyOutcome = "failed"
	// ManyBlocked: a lease, a run or a deny window holds the policy and
	// Force was not given; nothing was changed.
	ManyBlocked ManyOutcome = "blocked"
	// ManyBusy: another process is rotating the policy right now.
	ManyBusy ManyOutcome = "busy"
	// ManyInvalid: the policy could not start for bad input (a reference
	// that does not resolve, a store that is not configured).
	ManyInvalid ManyOutcome = "invalid"
)

// ManyResult is the report on one policy.
type ManyResult struct {
	Policy  string
	Outcome ManyOutcome
	// Token and Principal are the rotation's, when one ran.
	Token     string
	Principal string
	// RolledBack: a failed rotation was undone; the current credential is
	// unchanged.
	RolledBack bool
	Duration   time.Duration
	// Err is why the policy did not rotate (never a value).
	Err error
}

// RotateManyOptions configure RotateMany.
type RotateManyOptions struct {
	// Policies are the names to rotate (SelectPolicies).
	Policies []string
	// Selector says how they were chosen, for the audit log ("tag:checkout",
	// "all").
	Selector string
	// Local rotates in this process; otherwise the daemon does, and
	// RotateMany follows each request to its end.
	Local bool
	// Force rotates even while a lease, a run or a deny window blocks a
	// policy (each override is audited as rotation.forced).
	Force bool
	// Concurrency is how many policies rotate at once (through the daemon:
	// how many requests are outstanding at once); at least 1.
	Concurrency int
	// Actor is who asked ("operator:NAME").
	Actor string
	// OnDone is called as each policy ends, one call at a time.
	OnDone func(ManyResult)
	// PollInterval is how often the daemon's requests are looked at; 0
	// means 250ms.
	PollInterval time.Duration
}

// RotateMany rotates every policy of o.Policies and returns a result for
// each, sorted by name. It records rotation.emergency (who, how the policies
// were chosen, how many, local or not, forced or not) before it starts. The
// error is for what stops the whole run (the database, no daemon running:
// daemon.ErrNoDaemon); a policy's failure is in its result.
func (s *Session) RotateMany(ctx context.Context, o RotateManyOptions) ([]ManyResult, error) {
	if o.Concurrency < 1 {
		return nil, Inputf("--concurrency %d: give 1 or more", o.Concurrency)
	}
	set := s.PolicySet()
	for _, name := range o.Policies {
		if _, ok := set.Policies[name]; !ok {
			_, err := s.Policy(name)
			return nil, err
		}
	}
	if !o.Local {
		// Asking a database no daemon serves must change nothing, the
		// audit log included.
		alive, err := daemon.Alive(ctx, s.pool)
		if err != nil {
			return nil, err
		}
		if !alive {
			return nil, daemon.ErrNoDaemon
		}
	}
	if err := s.DB.AppendAudit(ctx, state.AuditEntry{Actor: o.Actor, Action: "rotation.emergency", Detail: map[string]any{
		"selector": o.Selector, "policies": len(o.Policies), "local": o.Local, "forced": o.Force, "concurrency": o.Concurrency,
	}}); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var results []ManyResult
	done := func(r ManyResult) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
		if o.OnDone != nil {
			o.OnDone(r)
		}
	}
	var err error
	if o.Local {
		err = s.rotateManyLocal(ctx, set, o, done)
	} else {
		err = s.rotateManyThroughDaemon(ctx, set, o, done)
	}
	slices.SortFunc(results, func(a, b ManyResult) int { return strings.Compare(a.Policy, b.Policy) })
	return results, err
}

func (s *Session) rotateManyLocal(ctx context.Context, set *daemon.PolicySet, o RotateManyOptions, done func(ManyResult)) error {
	now := time.Now().UTC()
	// One read of the calendar for every policy; each rotation looks again
	// right before set, as the daemon's do.
	cal, err := set.Calendar(ctx, s.DB, now)
	if err != nil {
		return err
	}
	rot := rotator.New(s.DB, rotator.Config{Logger: s.Logger})
	type item struct {
		policy   string
		blockers []schedule.Interval
	}
	work := make(chan item)
	var wg sync.WaitGroup
	for range min(o.Concurrency, len(o.Policies)) {
		wg.Go(func() {
			for it := range work {
				done(s.rotateOneLocal(ctx, rot, set, it.policy, it.blockers, now, o))
			}
		})
	}
	for _, name := range o.Policies {
		if ctx.Err() != nil {
			break
		}
		// The calendar is read here, by one goroutine.
		work <- item{policy: name, blockers: schedule.BlockersAt(*set.Policies[name].Plan, cal.For(name), now)}
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}

func (s *Session) rotateOneLocal(ctx context.Context, rot *rotator.Rotator, set *daemon.PolicySet, name string,
	blockers []schedule.Interval, now time.Time, o RotateManyOptions) ManyResult {
	start := time.Now()
	r := ManyResult{Policy: name}
	finish := func(outcome ManyOutcome, err error) ManyResult {
		r.Outcome, r.Err, r.Duration = outcome, err, time.Since(start)
		return r
	}
	if len(blockers) > 0 {
		if !o.Force {
			_, nextFree, err := daemon.Blockers(ctx, s.DB, set, name, now)
			if err != nil {
				return finish(ManyFailed, err)
			}
			return finish(ManyBlocked, &daemon.BlockedError{Policy: name, Blockers: blockers, NextFree: nextFree})
		}
		if err := s.DB.AppendAudit(ctx, state.AuditEntry{Actor: o.Actor, Policy: name, Action: "rotation.forced",
			Detail: map[string]any{"overrides": describeBlockers(blockers), "local": true}}); err != nil {
			return finish(ManyFailed, err)
		}
	}
	p, _ := s.Config.Policy(name)
	cred, err := s.OpenCredential(ctx, p)
	if err != nil {
		var input *InputError
		if errors.As(err, &input) {
			return finish(ManyInvalid, err)
		}
		return finish(ManyFailed, err)
	}
	defer cred.Target.Close()
	opts := rotator.Options{Actor: o.Actor, Force: o.Force}
	if !o.Force {
		// A lease taken since the calendar was read still holds: the
		// rotation stops before set, rolled back, having applied nothing.
		opts.BeforeSet = func(ctx context.Context) error {
			found, nextFree, err := daemon.Blockers(ctx, s.DB, set, name, time.Now().UTC())
			if err != nil || len(found) == 0 {
				return err
			}
			return &daemon.BlockedError{Policy: name, Blockers: found, NextFree: nextFree}
		}
	}
	res, err := rot.Rotate(ctx, cred, opts)
	r.Token, r.Principal, r.RolledBack = res.Token, res.Principal, res.RolledBack
	var inProgress *rotator.InProgressError
	var blocked *daemon.BlockedError
	switch {
	case err == nil:
		return finish(ManyRotated, nil)
	case errors.As(err, &inProgress):
		return finish(ManyBusy, err)
	case errors.As(err, &blocked):
		return finish(ManyBlocked, err)
	}
	return finish(ManyFailed, err)
}

func describeBlockers(ivs []schedule.Interval) []string {
	out := make([]string, 0, len(ivs))
	for _, iv := range ivs {
		out = append(out, fmt.Sprintf("%s %q until %s", iv.Kind, iv.Name, iv.End.UTC().Format(time.RFC3339)))
	}
	return out
}

// rotateManyThroughDaemon keeps at most o.Concurrency requests outstanding:
// it enqueues a wave, looks at the outstanding jobs every PollInterval, and
// tops the wave up as they end.
func (s *Session) rotateManyThroughDaemon(ctx context.Context, set *daemon.PolicySet, o RotateManyOptions, done func(ManyResult)) error {
	interval := o.PollInterval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	queue := o.Policies
	type request struct {
		ticket  daemon.Ticket
		policy  string
		started time.Time
	}
	outstanding := map[int64]request{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for len(queue) > 0 || len(outstanding) > 0 {
		if n := min(o.Concurrency-len(outstanding), len(queue)); n > 0 {
			reqs := make([]daemon.Request, n)
			for i, name := range queue[:n] {
				reqs[i] = daemon.Request{Policy: name, Force: o.Force, Actor: o.Actor}
			}
			queue = queue[n:]
			enqueued, err := daemon.EnqueueMany(ctx, s.pool, s.DB, set, reqs)
			if err != nil {
				return err
			}
			for _, e := range enqueued {
				var blocked *daemon.BlockedError
				switch {
				case errors.As(e.Err, &blocked):
					done(ManyResult{Policy: e.Request.Policy, Outcome: ManyBlocked, Err: e.Err})
				case e.Err != nil:
					done(ManyResult{Policy: e.Request.Policy, Outcome: ManyFailed, Err: e.Err})
				default:
					outstanding[e.Ticket.JobID] = request{ticket: e.Ticket, policy: e.Request.Policy, started: time.Now()}
				}
			}
			continue // top up at once when some were refused
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following %d request(s); the daemon carries on with them: %w", len(outstanding), ctx.Err())
		case <-tick.C:
		}
		tickets := make([]daemon.Ticket, 0, len(outstanding))
		for _, req := range outstanding {
			tickets = append(tickets, req.ticket)
		}
		finished, err := daemon.FinishedTickets(ctx, s.pool, s.DB, tickets)
		if err != nil {
			return err
		}
		for _, f := range finished {
			req := outstanding[f.Ticket.JobID]
			r := ManyResult{Policy: req.policy, Outcome: ManyRotated, Err: f.Err, Duration: time.Since(req.started)}
			if f.Rotation != nil {
				r.Token, r.Principal, r.RolledBack = f.Rotation.Token, f.Rotation.Principal, f.Rotation.RolledBack
			}
			if f.Err != nil {
				r.Outcome = ManyFailed
			}
			delete(outstanding, f.Ticket.JobID)
			done(r)
		}
	}
	return nil
}
