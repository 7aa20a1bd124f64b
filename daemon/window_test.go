package daemon_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// windowBundle is one policy that the planner never schedules (its fire is
// once a year), a daemon, and a channel of the jobs it finished, so a test
// inserts the fire's job itself, as the planner would, and sees it end.
type windowBundle struct {
	*daemonBundle
	d    *daemon.Daemon
	done chan error
}

func setupWindow(t *testing.T) *windowBundle {
	b := setupDaemonWindow(t, 1, "0 0 1 1 *", 2*time.Second, 0)
	w := &windowBundle{daemonBundle: b, done: make(chan error, 10)}
	w.d = b.startWith("w", nil, func(_ daemon.RotateArgs, _ rotator.Result, err error) { w.done <- err })
	return w
}

// insertFire inserts the job of a fire the way the planner does.
func (w *windowBundle) insertFire(slot, windowEnd time.Time) int64 {
	w.t.Helper()
	args := daemon.RotateArgs{Policy: "p00", Key: daemon.FireKey("p00", slot), Slot: slot, WindowEnd: windowEnd, Actor: "daemon"}
	opts := args.InsertOpts()
	job, err := w.d.River().Insert(w.ctx, args, &opts)
	require.NoError(w.t, err)
	return job.Job.ID
}

// waitJob waits for the job to finish one run and returns the job.
func (w *windowBundle) waitJob(id int64, within time.Duration) *rivertype.JobRow {
	w.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case <-w.done:
		case <-deadline:
			w.t.Fatalf("job %d did not finish within %s", id, within)
		case <-time.After(100 * time.Millisecond):
		}
		job, err := w.d.River().JobGet(w.ctx, id)
		require.NoError(w.t, err)
		if job.State == rivertype.JobStateCompleted || job.State == rivertype.JobStateDiscarded || job.State == rivertype.JobStateCancelled {
			return job
		}
	}
}

func (w *windowBundle) audited(action string) []state.AuditEntry {
	w.t.Helper()
	entries, err := w.db.Audit(w.ctx, "p00", 100)
	require.NoError(w.t, err)
	var out []state.AuditEntry
	for _, e := range entries {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// A job inserted before its slot and then held back by a lease that began in
// that gap and outlasts the window must not rotate when the lease ends: the
// fire is deferred, audited with the lease, and the job ends.
func TestHeldJobDoesNotRotateAfterItsWindow(t *testing.T) {
	t.Parallel()
	w := setupWindow(t)
	now := time.Now()
	_, err := w.db.StartLease(w.ctx, state.LeaseRequest{RunName: "late-soak", Uses: []string{"p00"}, Holder: "test", TTL: 4 * time.Second})
	require.NoError(t, err)
	id := w.insertFire(now.Add(300*time.Millisecond), now.Add(2*time.Second))

	job := w.waitJob(id, 20*time.Second)
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	// The lease expires 4s after it began; give a late rotation time to show.
	time.Sleep(time.Until(now.Add(6 * time.Second)))
	require.Empty(t, w.targets["p00"].times(), "no rotation outside the window")
	deferred := w.audited("rotation.deferred")
	require.Len(t, deferred, 1, "the deferral is audited once")
	require.Contains(t, fmt.Sprint(deferred[0].Detail["blocked_by"]), "late-soak", "with what blocked it")
}

// A job that starts after its window ended (a rescued or drained job) is a
// missed fire, not a late rotation.
func TestLateJobIsMissedNotRotated(t *testing.T) {
	t.Parallel()
	w := setupWindow(t)
	now := time.Now()
	id := w.insertFire(now.Add(-3*time.Second), now.Add(-time.Second))

	job := w.waitJob(id, 20*time.Second)
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Empty(t, w.targets["p00"].times())
	require.Len(t, w.audited("rotation.missed"), 1)
	rows, err := w.db.History(w.ctx, "p00", 10)
	require.NoError(t, err)
	require.Empty(t, rows, "no rotation started")
}

// A job that checked its window in time but reaches the rotator after the
// window ended (opening the policy took long) starts no rotation either: the
// rotator checks again right before it records one (found by `make chaos`
// under load: a start 1.2 s after the window).
func TestJobThatReachesTheRotatorLateStartsNothing(t *testing.T) {
	t.Parallel()
	b := setupDaemonWindow(t, 1, "0 0 1 1 *", 2*time.Second, 0)
	now := time.Now()
	windowEnd := now.Add(time.Second)
	p := b.set.Policies["p00"]
	open := p.Open
	p.Open = func(ctx context.Context) (rotator.Credential, error) {
		time.Sleep(time.Until(windowEnd.Add(300 * time.Millisecond)))
		return open(ctx)
	}
	b.set.Policies["p00"] = p
	w := &windowBundle{daemonBundle: b, done: make(chan error, 10)}
	w.d = b.startWith("w", nil, func(_ daemon.RotateArgs, _ rotator.Result, err error) { w.done <- err })
	id := w.insertFire(now.Add(100*time.Millisecond), windowEnd)

	job := w.waitJob(id, 20*time.Second)
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Empty(t, w.targets["p00"].times())
	rows, err := w.db.History(w.ctx, "p00", 10)
	require.NoError(t, err)
	require.Empty(t, rows, "no rotation started after the window")
	require.Len(t, w.audited("rotation.missed"), 1)
}

// A late job that finds a rotation left running finishes that rotation and
// begins none. When another process ends the rotation between the job's
// read of it and the rotator's lock (a replica that rescued it, `rotate
// --local`), the job must not start a rotation of its own: that one would
// run outside every window, and, the left one being past set, with no
// check before set at all (found by `make chaos`: a start 3.4 s after a
// window).
func TestLateJobWhoseRunningRotationEndsMeanwhileStartsNothing(t *testing.T) {
	t.Parallel()
	b := setupDaemonWindow(t, 1, "0 0 1 1 *", 2*time.Second, 0)
	now := time.Now()
	earlier := now.Add(-time.Minute)
	left := state.Rotation{Token: "01900000-0000-7000-8000-000000000001", Policy: "p00", Strategy: "single", Store: "file",
		SecretID: "p00", Actor: "daemon", RequestKey: daemon.FireKey("p00", earlier)}
	require.NoError(t, b.db.InsertRotation(b.ctx, left, state.AuditEntry{Actor: "daemon", Policy: "p00", Rotation: left.Token, Action: "rotation.started"}))
	for _, step := range []string{"create", "set"} {
		require.NoError(t, b.db.CompleteStep(b.ctx, left.Token, step, "", state.StepTiming{Step: step, Started: earlier}))
	}

	p := b.set.Policies["p00"]
	open := p.Open
	p.Open = func(ctx context.Context) (rotator.Credential, error) {
		// Another process ends the left rotation, rolled back, right after
		// the job read it. (An error fails the job, and the test with it.)
		if err := b.db.FinishRotation(ctx, left.Token, state.OutcomeFailed, "rolled back elsewhere", true, nil, false,
			state.AuditEntry{Actor: "daemon", Policy: "p00", Rotation: left.Token, Action: "rotation.failed"}); err != nil {
			return rotator.Credential{}, err
		}
		return open(ctx)
	}
	b.set.Policies["p00"] = p
	w := &windowBundle{daemonBundle: b, done: make(chan error, 10)}
	w.d = b.startWith("w", nil, func(_ daemon.RotateArgs, _ rotator.Result, err error) { w.done <- err })
	id := w.insertFire(now.Add(-3*time.Second), now.Add(-time.Second))

	job := w.waitJob(id, 20*time.Second)
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Empty(t, w.targets["p00"].times(), "nothing applied to the target")
	rows, err := w.db.History(w.ctx, "p00", 10)
	require.NoError(t, err)
	require.Len(t, rows, 1, "no rotation started besides the one left: %+v", rows)
	require.Equal(t, left.Token, rows[0].Token)
	require.Len(t, w.audited("rotation.missed"), 1, "the late fire is recorded as missed")
}

// A late job that finds a rotation left running (its replica died) ends it
// as the window allows: one left before set is rolled back, one past set
// is finished, since the target already changed. Neither job starts a
// rotation of its own.
func TestLateJobEndsTheRotationLeftRunning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		crashAfter rotator.Step
		outcome    state.Outcome
		rolledBack bool
		applied    int
	}{
		{rotator.StepCreate, state.OutcomeFailed, true, 0},
		{rotator.StepSet, state.OutcomeSucceeded, false, 1},
	} {
		t.Run("after "+string(tc.crashAfter), func(t *testing.T) {
			t.Parallel()
			w := setupWindow(t)
			now := time.Now()
			cred, err := w.set.Policies["p00"].Open(w.ctx)
			require.NoError(t, err)
			_, err = rotator.New(w.db, rotator.Config{}).Rotate(w.ctx, cred, rotator.Options{Actor: "daemon",
				RequestKey: daemon.FireKey("p00", now.Add(-time.Minute)),
				AfterStep: func(s rotator.Step) error {
					if s == tc.crashAfter {
						return rotator.ErrCrash
					}
					return nil
				}})
			require.ErrorIs(t, err, rotator.ErrCrash)
			left, err := w.db.RunningRotation(w.ctx, "p00")
			require.NoError(t, err)

			id := w.insertFire(now.Add(-3*time.Second), now.Add(-time.Second))
			job := w.waitJob(id, 20*time.Second)
			require.Equal(t, rivertype.JobStateCompleted, job.State)
			rows, err := w.db.History(w.ctx, "p00", 10)
			require.NoError(t, err)
			require.Len(t, rows, 1, "no rotation started besides the one left: %+v", rows)
			require.Equal(t, left.Token, rows[0].Token)
			require.Equal(t, tc.outcome, rows[0].Outcome, rows[0].Error)
			require.Equal(t, tc.rolledBack, rows[0].RolledBack)
			require.Len(t, w.targets["p00"].times(), tc.applied)
		})
	}
}

// A run that begins between create and set, and lasts past the window, stops
// the rotation at set: it is rolled back (pending discarded, nothing applied)
// and the fire is deferred instead of set applying late.
func TestRunStartingBeforeSetPastTheWindowRollsBack(t *testing.T) {
	t.Parallel()
	w := setupWindow(t)
	target := w.targets["p00"]
	target.onCreate = func() {
		_, err := w.db.StartLease(context.Background(), state.LeaseRequest{RunName: "sudden-run", Uses: []string{"p00"}, Holder: "test", TTL: 5 * time.Second})
		require.NoError(t, err)
	}
	now := time.Now()
	id := w.insertFire(now.Add(200*time.Millisecond), now.Add(2*time.Second))

	job := w.waitJob(id, 20*time.Second)
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Empty(t, target.times(), "set never applied")
	_, err := w.files.Get(w.ctx, "p00", providers.StagePending)
	require.ErrorIs(t, err, providers.ErrNotFound, "the pending version was discarded")
	rows, err := w.db.History(w.ctx, "p00", 10)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.True(t, rows[0].RolledBack, "the rotation was rolled back: %+v", rows[0])
	require.Len(t, w.audited("rotation.deferred"), 1)
}

// TestLateJobFollowsTheMissedRule: a fire's job that starts only after its
// window ended (rescued from a dead replica, put back by a drain) is
// recorded as missed, and then the policy's missed rule applies as to any
// missed window: asap rotates the fire at the first free moment, once;
// next_window leaves it to the next fire.
func TestLateJobFollowsTheMissedRule(t *testing.T) {
	t.Parallel()
	for _, rule := range []string{schedule.MissedASAP, schedule.MissedNextWindow} {
		t.Run(rule, func(t *testing.T) {
			t.Parallel()
			b := setupDaemonWindow(t, 1, "@hourly", 30*time.Minute, 0)
			p := b.set.Policies["p00"]
			p.Plan.Missed = rule
			b.set.Policies["p00"] = p
			fire := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
			now := fire.Add(40 * time.Minute) // ten minutes after the window
			done := make(chan daemon.RotateArgs, 10)
			d := b.startWith("a", func(cfg *daemon.Config) { cfg.Now = func() time.Time { return now } },
				func(args daemon.RotateArgs, _ rotator.Result, _ error) { done <- args })
			late := daemon.RotateArgs{Policy: "p00", Key: daemon.FireKey("p00", fire), Slot: fire, WindowEnd: fire.Add(30 * time.Minute), Actor: "daemon"}
			opts := late.InsertOpts()
			_, err := d.River().Insert(b.ctx, late, &opts)
			require.NoError(t, err)

			want := 1 // the late job
			if rule == schedule.MissedASAP {
				want = 2 // and the missed-asap job
			}
			for range want {
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("the jobs did not run")
				}
			}
			entries, err := b.db.Audit(b.ctx, "p00", 100)
			require.NoError(t, err)
			var missed []state.AuditEntry
			for _, e := range entries {
				if e.Action == "rotation.missed" {
					missed = append(missed, e)
				}
			}
			require.Len(t, missed, 1, "the late job is recorded as missed")
			require.Equal(t, rule, missed[0].Detail["missed_rule"])
			rows, err := b.db.ByKey(b.ctx, late.Key)
			require.NoError(t, err)
			if rule == schedule.MissedNextWindow {
				require.Empty(t, rows, "nothing rotates for the missed fire")
				require.Empty(t, b.targets["p00"].times())
				return
			}
			require.Len(t, rows, 1, "the fire rotates once, at the first free moment")
			require.Equal(t, state.OutcomeSucceeded, rows[0].Outcome, rows[0].Error)
			require.True(t, rows[0].Steps[0].Started.Equal(now), "it started at once, outside the window")
			require.Len(t, b.targets["p00"].times(), 1)
		})
	}
}
