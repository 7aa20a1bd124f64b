package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// maxRecheck bounds how long the planner leaves a policy alone when nothing
// that concerns it changes: a run or lease added, cancelled or ended marks
// the policies it uses for the next tick (markChanged), a reload those whose
// timing changed, and a slot is looked at again a lookahead before it comes.
// The recheck is a safety net (a clock far off, a change missed): each is
// drawn from the last quarter before it, so that 100,000 policies planned
// at start do not all come due again in one tick.
const maxRecheck = time.Hour

func recheckAfter() time.Duration { return maxRecheck - rand.N(maxRecheck/4) }

// changeMargin is how far before its last read a planner reads the
// calendar's changes again: a run added by a host whose clock is behind, or
// in a transaction that committed after that read, still counts. Changes
// already marked are skipped (seenChanges).
const changeMargin = 2 * time.Minute

// planBatch bounds the policies one planning job handles; the rest wait for
// the next tick.
const planBatch = 20000

type planWorker struct {
	river.WorkerDefaults[planArgs]
	d *Daemon
}

func (w *planWorker) Work(ctx context.Context, _ *river.Job[planArgs]) error {
	w.d.planTick(ctx)
	return nil
}

// planLoop plans, in every replica, every PlanInterval until ctx ends.
// Planning does not wait for River's leader: a killed leader's lease runs
// 15 s before another replica is elected, while a killed planner's lock
// goes with its database session at once, so the next tick of any replica
// plans.
func (d *Daemon) planLoop(ctx context.Context) {
	defer close(d.planningDone)
	next := time.NewTimer(0)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-next.C:
		}
		d.planTick(ctx)
		next.Reset(d.cfg.PlanInterval)
	}
}

// planTick plans once if no other replica is planning right now.
func (d *Daemon) planTick(ctx context.Context) {
	lock, err := d.db.TryLockPlanner(ctx)
	switch {
	case errors.Is(err, state.ErrLocked):
		return // another replica plans this tick
	case err != nil:
		if ctx.Err() == nil {
			d.logger.Warn("planning skipped", "error", err)
		}
		return
	}
	defer lock.Release()
	// Under the planner's lock: one replica reports an expired lease.
	if err := d.reportExpiredLeases(ctx); err != nil && ctx.Err() == nil {
		d.logger.Error("reporting expired leases failed", "error", err)
	}
	if _, err := d.PlanOnce(ctx); err != nil && ctx.Err() == nil {
		d.logger.Error("planning failed", "error", err)
	}
}

// Calendar is the one assembly of what blocks rotations: the runs and
// leases in the state database as busy intervals, with the set's global
// deny windows. Every planner, check and report reads it through here.
func (s *PolicySet) Calendar(ctx context.Context, db *state.DB, now time.Time) (*schedule.Calendar, error) {
	busy, err := db.Calendar(ctx, now, s.Expand)
	if err != nil {
		return nil, err
	}
	busy.Deny = append(busy.Deny, s.Deny...)
	return schedule.NewCalendar(busy), nil
}

// PlanOnce plans every policy whose next check has come: it inserts a
// rotation job for each fire whose slot is within the lookahead, records
// deferrals in the audit log once per fire, and sets when to look again.
// It returns how many jobs it inserted. The replica that holds the planning
// lock runs it every PlanInterval; it is safe to run anywhere (jobs are
// unique per fire, and planned fires only move forward).
func (d *Daemon) PlanOnce(ctx context.Context) (int, error) {
	set := d.policies.Load()
	now := d.cfg.Now()
	if err := d.markChanged(ctx, set, now); err != nil {
		return 0, err
	}
	until := now.Add(d.cfg.Lookahead)
	// A policy's next check is when its slot comes within the lookahead:
	// each tick plans only the policies whose time has come, not every
	// policy with a fire in the next minute.
	due, err := d.db.DuePlans(ctx, now, planBatch)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	cal, err := set.Calendar(ctx, d.db, now)
	if err != nil {
		return 0, err
	}

	var jobs []river.InsertManyParams
	var updates []state.PlanUpdate
	for _, st := range due {
		p, ok := set.Policies[st.Policy]
		if !ok {
			// Not configured (any more): look again after a reload.
			updates = append(updates, state.PlanUpdate{Policy: st.Policy, NextCheck: now.Add(recheckAfter())})
			continue
		}
		dec := schedule.Plan(*p.Plan, schedule.State{LastRotated: deref(st.RotatedAt), LastPlannedFire: deref(st.PlannedFire)}, cal.For(st.Policy), now)
		update := state.PlanUpdate{Policy: st.Policy, NextCheck: now.Add(recheckAfter())}
		if !dec.Missed.IsZero() && (st.DeferredFire == nil || dec.Missed.Start.After(*st.DeferredFire)) {
			// Audited once: the missed fire is remembered like a deferred one.
			d.audit(ctx, st.Policy, "rotation.missed", map[string]any{"window_start": dec.Missed.Start, "window_end": dec.Missed.End})
			missed := dec.Missed.Start
			update.DeferredFire = &missed
		}
		for _, w := range dec.Deferred {
			if st.DeferredFire != nil && !w.Window.Start.After(*st.DeferredFire) {
				continue
			}
			d.audit(ctx, st.Policy, "rotation.deferred", map[string]any{"fire": w.Window.Start, "blocked_by": blockerNames(w.Blockers)})
			d.notifyDeferred(ctx, st.Policy, w.Window.Start, dec.Start, w.Blockers, "")
			fire := w.Window.Start
			update.DeferredFire = &fire
		}
		if dec.Overdue {
			d.logger.Warn("policy is overdue", "policy", st.Policy, "overdue_since", dec.OverdueAt, "forced", dec.Forced)
			d.notifyOverdue(ctx, st.Policy, dec.OverdueAt, dec.Forced)
		}
		switch {
		case dec.Start.IsZero():
			// No allowed start within the horizon: look again later.
		case !dec.Start.After(until):
			handles := dec.Handles
			update.PlannedFire = &handles
			args := RotateArgs{Policy: st.Policy, Key: FireKey(st.Policy, dec.Handles), Slot: dec.Start, Force: dec.Forced, Actor: "daemon"}
			if !dec.Forced && !dec.ASAP {
				args.WindowEnd = dec.Window.End
			}
			opts := args.InsertOpts()
			opts.MaxAttempts = max(p.MaxAttempts, 1)
			jobs = append(jobs, river.InsertManyParams{Args: args, InsertOpts: &opts})
			if next := p.Plan.Schedule.Next(dec.Handles); !next.IsZero() {
				update.NextCheck = minTime(update.NextCheck, next.Add(-d.cfg.Lookahead))
			}
			if dec.Forced {
				d.audit(ctx, st.Policy, "rotation.forced", map[string]any{"reason": "overdue", "blocked_by": blockerNames(dec.Blockers)})
			}
		default:
			update.NextCheck = minTime(update.NextCheck, dec.Start.Add(-d.cfg.Lookahead))
			if !dec.OverdueAt.IsZero() && dec.OverdueAt.After(now) {
				update.NextCheck = minTime(update.NextCheck, dec.OverdueAt)
			}
		}
		updates = append(updates, update)
	}
	if len(jobs) > 0 {
		if _, err := d.river.InsertMany(ctx, jobs); err != nil {
			return 0, fmt.Errorf("insert rotation jobs: %w", err)
		}
	}
	return len(jobs), d.db.UpdatePlans(ctx, updates)
}

// markChanged brings forward the next check of the policies whose plan may
// have changed since this replica last planned: those a run or lease added,
// cancelled, taken or ended since then uses, and those a reload changed
// (pendingDue). A replica's first plan marks every policy: the policies
// may have been planned with another configuration. The rest keep their
// next check: planning work follows what changed, not how many policies
// there are.
func (d *Daemon) markChanged(ctx context.Context, set *PolicySet, now time.Time) error {
	d.changes.Lock()
	defer d.changes.Unlock()
	first := d.changes.since.IsZero()
	since := d.changes.since.Add(-changeMargin)
	if first {
		since = now.Add(-changeMargin)
	}
	changes, dbNow, err := d.db.CalendarChanges(ctx, since)
	if err != nil {
		return err
	}
	names := d.changes.pending
	if first {
		names = slices.Collect(maps.Keys(set.Policies))
	}
	var seen []string
	for _, c := range changes {
		if _, ok := d.changes.seen[c.Key]; ok {
			continue
		}
		seen = append(seen, c.Key)
		if !first {
			names = append(names, set.Expand(c.Uses)...)
		}
	}
	if err := d.db.MarkDue(ctx, names, now); err != nil {
		return err
	}
	for _, k := range seen {
		d.changes.seen[k] = dbNow
	}
	for k, at := range d.changes.seen {
		if at.Before(dbNow.Add(-2 * changeMargin)) {
			delete(d.changes.seen, k)
		}
	}
	d.changes.since, d.changes.pending = dbNow, nil
	return nil
}

type rotateWorker struct {
	river.WorkerDefaults[RotateArgs]
	d *Daemon
}

func (w *rotateWorker) Work(ctx context.Context, job *river.Job[RotateArgs]) error {
	res, err := w.d.runJob(ctx, job.Args, job.Attempt, job.MaxAttempts, firstRun(job.JobRow))
	w.d.notifyResult(ctx, job.Args, res, err, job.Attempt, job.MaxAttempts)
	if w.d.OnResult != nil {
		w.d.OnResult(job.Args, res, err)
	}
	return err
}

// firstRun tells a job's first run from a retry (Attempt counts those) and
// from a run after a snooze (River counts those in the metadata's
// "snoozes"): only the first shows how late the daemon got to a slot.
func firstRun(job *rivertype.JobRow) bool {
	var meta struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(job.Metadata, &meta)
	return job.Attempt <= 1 && meta.Snoozes == 0
}

// runJob runs one rotation job. It waits for the job's slot, snoozes while
// a run or deny window blocks the policy (unless forced), rotates, and
// turns the outcome into what River should do next.
func (d *Daemon) runJob(ctx context.Context, args RotateArgs, attempt, maxAttempts int, first bool) (rotator.Result, error) {
	set := d.policies.Load()
	p, ok := set.Policies[args.Policy]
	if !ok {
		return rotator.Result{}, river.JobCancel(fmt.Errorf("policy %q is no longer configured", args.Policy))
	}
	if wait := args.Slot.Sub(d.cfg.Now()); wait > 0 {
		select {
		case <-ctx.Done():
			return rotator.Result{}, river.JobSnooze(0)
		case <-time.After(wait):
		}
	}

	select {
	case d.rotating <- struct{}{}:
		defer func() { <-d.rotating }()
	case <-ctx.Done():
		return rotator.Result{}, river.JobSnooze(0)
	}
	if first && d.OnStart != nil {
		d.OnStart(args, d.cfg.Now().Sub(args.Slot))
	}

	block := &blockCheck{db: d.db, set: set, policy: args.Policy, plan: *p.Plan, now: d.cfg.Now, windowEnd: args.WindowEnd, reads: d.calendars}
	if !args.Force {
		err := block.check(ctx)
		switch {
		case err == nil:
		case errors.Is(err, rotator.ErrDeferred):
			d.logger.Info("rotation waits for a run", "policy", args.Policy, "until", block.until)
			return rotator.Result{}, river.JobSnooze(max(block.until.Sub(d.cfg.Now()), time.Second))
		case errors.Is(err, ErrWindowClosed):
			// Held past its window: this fire does not rotate. A rotation
			// it began before it was held is undone, not finished late.
			return d.windowClosed(ctx, p, args, block)
		default:
			return rotator.Result{}, err
		}
	}

	policy, err := p.Open(ctx)
	if err != nil {
		return rotator.Result{}, fmt.Errorf("open policy %q: %w", args.Policy, err)
	}
	defer policy.Target.Close()
	opts := rotator.Options{Actor: args.Actor, Force: args.Force, RequestKey: args.Key}
	if !args.Force {
		opts.BeforeStart, opts.BeforeSet = block.check, block.check
	}
	res, err := d.rot.Rotate(ctx, policy, opts)

	var inProgress *rotator.InProgressError
	var stepErr *rotator.StepError
	var unreadable *rotator.UnreadableCurrentError
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, rotator.ErrRefused) || errors.As(err, &unreadable):
		// Refused, nothing changed (audited once, by the rotator): the
		// secret needs an operator (`swarmkey resolve`, the store's own
		// rotator, `rotate --local --replace-unreadable-current`). A retry
		// would find the same and audit it again.
		d.logger.Warn("rotation refused; the job is cancelled until an operator acts", "policy", args.Policy, "key", args.Key, "error", err)
		return res, river.JobCancel(err)
	case errors.Is(err, ErrWindowClosed):
		// The window closed while the rotation waited at set: it was
		// rolled back (nothing was applied); the fire is deferred.
		d.auditWindowClosed(ctx, args, block)
		return res, nil
	case errors.As(err, &inProgress):
		// Another process (run-due, rotate --local, a replica finishing a
		// rescued job) holds the policy: try again shortly.
		return res, river.JobSnooze(2 * time.Second)
	case errors.Is(err, rotator.ErrDeferred):
		return res, river.JobSnooze(max(block.until.Sub(d.cfg.Now()), time.Second))
	case ctx.Err() != nil:
		// A drain: the rotation stays resumable; make the job available
		// again at once, for another replica or the next start.
		return res, river.JobSnooze(0)
	case errors.As(err, &stepErr) && stepErr.Outcome == state.OutcomeNeedsAttention && promoted(err):
		// The new credential is current: the fire or request is done, and
		// what needs a person is recorded. Another attempt would rotate it
		// again and retire this credential a whole period early.
		return res, river.JobCancel(err)
	case errors.As(err, &stepErr) && stepErr.Outcome == state.OutcomeFailed && attempt >= maxAttempts:
		reason := fmt.Sprintf("attempt limit %d reached", maxAttempts)
		if markErr := d.db.MarkNeedsAttention(context.WithoutCancel(ctx), res.Token, reason); markErr != nil {
			d.logger.Error("recording needs_attention failed", "policy", args.Policy, "error", markErr)
		}
		d.audit(ctx, args.Policy, "rotation.needs_attention", map[string]any{"reason": reason, "rotation": res.Token})
		d.logger.Error("rotation needs attention", "policy", args.Policy, "token", res.Token, "reason", reason)
		res.Outcome = state.OutcomeNeedsAttention
		return res, err
	}
	return res, err
}

// promoted reports whether a rotation that ended needs_attention got past
// its promote: its finish failed, or its promote landed while another
// writer changed the secret.
func promoted(err error) bool {
	var stepErr *rotator.StepError
	if errors.As(err, &stepErr) && stepErr.Step == rotator.StepFinish {
		return true
	}
	var incomplete *rotator.PromoteIncompleteError
	return errors.As(err, &incomplete) && !incomplete.Resumable
}

// blockCheck asks whether a run, a lease or a deny window blocks a policy
// now; until is when the last blocker found ends.
type blockCheck struct {
	db     *state.DB
	set    *PolicySet
	policy string
	plan   schedule.Timing
	now    func() time.Time
	// windowEnd, when set, is when the job's window ends: past it check
	// fails with ErrWindowClosed whatever else it finds.
	windowEnd time.Time
	// reads, when set, shares calendar reads with other checks (the
	// daemon's); nil reads alone.
	reads *calendarReads
	until time.Time
	// blockers are those the last check found.
	blockers []schedule.Interval
}

// check returns nil when the policy is free for its expected duration from
// now; an error wrapping ErrDeferred that names the blockers when they end
// inside the job's window (or the job has none); an error wrapping
// ErrWindowClosed when the window has ended or the blockers outlast it.
func (b *blockCheck) check(ctx context.Context) error {
	now := b.now()
	b.blockers, b.until = nil, time.Time{}
	var cal *schedule.Calendar
	var err error
	if b.reads != nil {
		cal, err = b.reads.get(ctx, b.set)
	} else {
		cal, err = b.set.Calendar(ctx, b.db, now)
	}
	if err != nil {
		return err
	}
	b.blockers = schedule.BlockersAt(b.plan, cal.For(b.policy), now)
	// The window is judged by the clock after the calendar read, which can
	// take seconds (a restarting database): the clock before it could let
	// a rotation begin after its window.
	if !b.windowEnd.IsZero() && !b.now().Before(b.windowEnd) {
		return fmt.Errorf("%w: the window of %q ended at %s", ErrWindowClosed, b.policy, b.windowEnd.Format(time.RFC3339))
	}
	if len(b.blockers) == 0 {
		return nil
	}
	b.until = b.blockers[0].End
	for _, iv := range b.blockers {
		b.until = maxTime(b.until, iv.End)
	}
	if !b.windowEnd.IsZero() && !b.until.Before(b.windowEnd) {
		// Waiting it out would start the rotation after its window.
		return fmt.Errorf("%w: %s blocks %q past the end of its window at %s", ErrWindowClosed, blockerNames(b.blockers), b.policy, b.windowEnd.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: %s blocks %q until %s", rotator.ErrDeferred, blockerNames(b.blockers), b.policy, b.until.Format(time.RFC3339))
}

// ErrWindowClosed is the BeforeSet error of a fire's rotation whose window
// ended before set: the rotator rolls back what create did, and the job
// ends without rotating.
var ErrWindowClosed = errors.New("the rotation window closed")

// windowClosed ends a fire's job whose window has ended before its rotation
// could start. A rotation of this policy left before set (by a snooze at
// set, a drain or a dead replica) is rolled back by running it once more
// with a BeforeSet that refuses; one that got past set is finished, since
// the target already changed. It never begins a rotation. Either way the
// fire is audited as deferred (with what held it back) and the job
// completes: the planner takes the next fire.
func (d *Daemon) windowClosed(ctx context.Context, p Scheduled, args RotateArgs, block *blockCheck) (rotator.Result, error) {
	running, err := d.db.RunningRotation(ctx, args.Policy)
	switch {
	case errors.Is(err, state.ErrNotFound):
		d.auditWindowClosed(ctx, args, block)
		return rotator.Result{}, nil
	case err != nil:
		return rotator.Result{}, err
	}
	policy, err := p.Open(ctx)
	if err != nil {
		return rotator.Result{}, fmt.Errorf("open policy %q: %w", args.Policy, err)
	}
	defer policy.Target.Close()
	// The running rotation's own key: Rotate then ends with it. Between the
	// read above and Rotate's lock another process (a replica that rescued
	// it, `rotate --local`) may end that rotation; Rotate would then start
	// a new one, outside every window, and past set with no check at all.
	// BeforeStart refuses that: here a rotation is only finished, never
	// begun (found by `make chaos`: a start 3.4 s after a window).
	windowEnded := func(context.Context) error {
		return fmt.Errorf("%w: the window ended at %s", ErrWindowClosed, args.WindowEnd.Format(time.RFC3339))
	}
	opts := rotator.Options{Actor: args.Actor, RequestKey: running.RequestKey, BeforeStart: windowEnded}
	if !rotator.PastSet(running.Step) {
		opts.BeforeSet = windowEnded
	}
	res, err := d.rot.Rotate(ctx, policy, opts)
	if errors.Is(err, ErrWindowClosed) {
		d.auditWindowClosed(ctx, args, block)
		return res, nil
	}
	return res, err
}

// auditWindowClosed records a fire that did not rotate because its window
// ended: rotation.deferred with what held it back, or rotation.missed when
// nothing did (the job itself came late: a rescued or drained job). Then
// the policy's missed rule applies to the fire, as to a window the planner
// finds missed: with next_window the planner takes the next fire; with asap
// a job starts the rotation at the earliest free moment (see missedASAP).
func (d *Daemon) auditWindowClosed(ctx context.Context, args RotateArgs, block *blockCheck) {
	fire := strings.TrimPrefix(args.Key, "fire:"+args.Policy+":")
	detail := map[string]any{"fire": fire, "window_end": args.WindowEnd}
	asap, err := d.missedASAP(ctx, args)
	switch {
	case err != nil:
		d.logger.Error("missed: asap not applied", "policy", args.Policy, "fire", fire, "error", err)
		detail["missed_rule"] = "asap failed: " + err.Error()
	case !asap.IsZero():
		detail["missed_rule"] = "asap"
		detail["asap_start"] = asap
	default:
		detail["missed_rule"] = schedule.MissedNextWindow
	}
	if len(block.blockers) > 0 {
		detail["blocked_by"], detail["reason"] = blockerNames(block.blockers), "held past the end of its window"
		d.audit(ctx, args.Policy, "rotation.deferred", detail)
		d.logger.Info("rotation deferred: its window ended while a run held it", "policy", args.Policy, "fire", fire, "asap_start", asap)
		d.notifyWindowClosed(ctx, args, fire, block.blockers)
		return
	}
	detail["reason"] = "the job started after its window ended"
	d.audit(ctx, args.Policy, "rotation.missed", detail)
	d.logger.Warn("rotation missed: the job started after its window ended", "policy", args.Policy, "fire", fire, "asap_start", asap)
}

// missedASAP applies `missed: asap` to a fire whose job ended without
// rotating because its window closed: it plans the policy as if the fire
// had not been handled, and when that gives an asap start for this very
// fire (the earliest free moment within one period, before the next fire
// takes over), it inserts the fire's missed-asap job there and returns the
// start. It returns zero for `next_window`, and when the start falls to a
// later fire, which the planner plans as usual. Inserting is idempotent (a
// retried job finds the missed-asap job inserted), and the rotation keeps
// the fire's key, so the fire rotates at most once.
func (d *Daemon) missedASAP(ctx context.Context, args RotateArgs) (time.Time, error) {
	p, ok := d.policies.Load().Policies[args.Policy]
	if !ok || p.Plan.Missed != schedule.MissedASAP || args.MissedASAP {
		return time.Time{}, nil
	}
	fire, err := time.Parse(time.RFC3339, strings.TrimPrefix(args.Key, "fire:"+args.Policy+":"))
	if err != nil {
		return time.Time{}, nil // not a fire's job
	}
	ctx = context.WithoutCancel(ctx)
	now := d.cfg.Now()
	ps, err := d.db.PolicyState(ctx, args.Policy)
	if err != nil {
		return time.Time{}, err
	}
	cal, err := d.policies.Load().Calendar(ctx, d.db, now)
	if err != nil {
		return time.Time{}, err
	}
	dec := schedule.Plan(*p.Plan, schedule.State{LastRotated: deref(ps.RotatedAt), LastPlannedFire: fire.Add(-time.Nanosecond)},
		cal.For(args.Policy), now)
	if !dec.ASAP || !dec.Missed.Start.Equal(fire) || !dec.Handles.Equal(fire) {
		return time.Time{}, nil
	}
	asap := RotateArgs{Policy: args.Policy, Key: args.Key, Slot: dec.Start, Actor: "daemon", MissedASAP: true}
	opts := asap.InsertOpts()
	opts.MaxAttempts = max(p.MaxAttempts, 1)
	if _, err := d.river.Insert(ctx, asap, &opts); err != nil {
		return time.Time{}, fmt.Errorf("insert the missed-asap job: %w", err)
	}
	return dec.Start, nil
}

func (d *Daemon) audit(ctx context.Context, policy, action string, detail map[string]any) {
	err := d.db.AppendAudit(context.WithoutCancel(ctx), state.AuditEntry{Actor: "daemon", Policy: policy, Action: action, Detail: detail})
	if err != nil {
		d.logger.Error("audit write failed", "policy", policy, "action", action, "error", err)
	}
}

func blockerNames(ivs []schedule.Interval) string {
	out := ""
	for i, iv := range ivs {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %q (%s–%s)", iv.Kind, iv.Name, iv.Start.Format(time.RFC3339), iv.End.Format(time.RFC3339))
	}
	return out
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
