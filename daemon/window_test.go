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
