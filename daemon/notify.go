package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/swarmkey/swarmkey/notify"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// The daemon's notifications are sent where it audits the same events; each
// carries what the audit entry holds, never a value. Queueing one is an
// insert of River jobs that never fails or holds up its caller (see
// notify.Notifier.Enqueue).

// notify queues e, with the tags of its policies for routing.
func (d *Daemon) notify(ctx context.Context, e notify.Event) {
	set := d.policies.Load()
	for _, p := range append([]string{e.Policy}, e.Policies...) {
		for _, t := range set.Policies[p].Tags {
			if !slices.Contains(e.Tags, t) {
				e.Tags = append(e.Tags, t)
			}
		}
	}
	if e.At.IsZero() {
		e.At = d.cfg.Now()
	}
	d.cfg.Notifier.Enqueue(ctx, d.river, e)
}

// notifyResult sends a rotation job's failure: needs_attention when the
// rotation ended so (the rotator's verdict, or the daemon's at the attempt
// limit), failed for an attempt that failed and will be retried. Snoozes,
// cancellations and drains are not failures.
func (d *Daemon) notifyResult(ctx context.Context, args RotateArgs, res rotator.Result, err error, attempt, maxAttempts int) {
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	if err == nil || errors.As(err, &snooze) || errors.As(err, &cancel) || ctx.Err() != nil {
		return
	}
	e := notify.Event{Policy: args.Policy, Kind: notify.Failed, Reason: err.Error(),
		Detail: map[string]string{"attempt": strconv.Itoa(attempt), "max_attempts": strconv.Itoa(maxAttempts), "actor": args.Actor}}
	var stepErr *rotator.StepError
	if errors.As(err, &stepErr) {
		e.Rotation, e.Outcome, e.Reason = stepErr.Token, string(stepErr.Outcome), stepErr.Reason
		e.Detail["step"] = string(stepErr.Step)
		e.Detail["rolled_back"] = strconv.FormatBool(stepErr.RolledBack)
	}
	if res.Outcome == state.OutcomeNeedsAttention || (stepErr != nil && stepErr.Outcome == state.OutcomeNeedsAttention) {
		e.Kind, e.Outcome = notify.NeedsAttention, string(state.OutcomeNeedsAttention)
		if stepErr != nil && stepErr.Outcome == state.OutcomeFailed {
			e.Reason = fmt.Sprintf("attempt limit %d reached; the last attempt: %s", maxAttempts, stepErr.Reason)
		}
	}
	d.notify(ctx, e)
}

// notifyOverdue sends overdue once per credential: the first plan that finds
// the policy overdue since `since` claims the report in the state database.
func (d *Daemon) notifyOverdue(ctx context.Context, policy string, since time.Time, forced bool) {
	first, err := d.db.ClaimOverdueReport(ctx, policy, since)
	if err != nil {
		d.logger.Error("recording the overdue report failed", "policy", policy, "error", err)
		return
	}
	if !first {
		return
	}
	action := "alert"
	if forced {
		action = "force"
	}
	d.audit(ctx, policy, "rotation.overdue", map[string]any{"overdue_since": since, "on_overdue": action})
	d.notify(ctx, notify.Event{Policy: policy, Kind: notify.Overdue,
		Reason: "the credential is older than max_age since " + since.UTC().Format(time.RFC3339),
		Detail: map[string]string{"overdue_since": since.UTC().Format(time.RFC3339), "on_overdue": action}})
}

// notifyDeferred sends a deferral of fire that pushes the rotation back to
// next (zero: nothing free within the planning horizon) by more than the
// threshold.
func (d *Daemon) notifyDeferred(ctx context.Context, policy string, fire, next time.Time, blockers []schedule.Interval, reason string) {
	threshold := d.cfg.Notifier.Config().DeferralThreshold
	if !next.IsZero() && next.Sub(fire) <= threshold {
		return
	}
	detail := map[string]string{"fire": fire.UTC().Format(time.RFC3339), "blocked_by": blockerNames(blockers)}
	if next.IsZero() {
		detail["next_start"] = "none within the planning horizon"
	} else {
		detail["next_start"] = next.UTC().Format(time.RFC3339)
	}
	if reason == "" {
		reason = "blocked by " + blockerNames(blockers)
	}
	d.notify(ctx, notify.Event{Policy: policy, Kind: notify.Deferred, Reason: reason, Detail: detail})
}

// expiredLeaseBatch bounds the expired leases one planning tick reports.
const expiredLeaseBatch = 1000

// reportExpiredLeases audits and notifies every lease that expired without
// an end, once: the state database marks each as reported as it hands it
// out, so replicas and later ticks do not report it again.
func (d *Daemon) reportExpiredLeases(ctx context.Context) error {
	leases, err := d.db.ClaimExpiredLeases(ctx, d.cfg.Now(), expiredLeaseBatch)
	if err != nil {
		return err
	}
	set := d.policies.Load()
	for _, l := range leases {
		policies := set.Expand(l.Uses)
		slices.Sort(policies)
		policies = slices.Compact(policies)
		expiredAt := l.LastHeartbeat.Add(l.TTL)
		d.audit(ctx, "", "lease.expired", map[string]any{"lease": l.ID, "run": l.RunName, "holder": l.Holder,
			"uses": l.Uses, "last_heartbeat": l.LastHeartbeat, "expired_at": expiredAt})
		d.logger.Warn("a lease expired without a heartbeat or an end", "lease", l.ID, "run", l.RunName, "holder", l.Holder)
		d.notify(ctx, notify.Event{Kind: notify.LeaseExpired, Policies: policies,
			Reason: fmt.Sprintf("run %q held by %s sent no heartbeat for %s and did not end", l.RunName, l.Holder, l.TTL),
			Detail: map[string]string{"lease": l.ID, "run": l.RunName, "holder": l.Holder, "uses": strings.Join(l.Uses, ","),
				"last_heartbeat": l.LastHeartbeat.UTC().Format(time.RFC3339), "expired_at": expiredAt.UTC().Format(time.RFC3339)}})
	}
	return nil
}

// notifyWindowClosed sends a fire that a run held past the end of its
// window; the rotation waits at least for the schedule's next fire.
func (d *Daemon) notifyWindowClosed(ctx context.Context, args RotateArgs, fire string, blockers []schedule.Interval) {
	at, err := time.Parse(time.RFC3339, fire)
	if err != nil {
		at = args.Slot
	}
	var next time.Time
	if p, ok := d.policies.Load().Policies[args.Policy]; ok {
		next = p.Plan.Schedule.Next(d.cfg.Now())
	}
	d.notifyDeferred(ctx, args.Policy, at, next, blockers, "held past the end of its window by "+blockerNames(blockers))
}
