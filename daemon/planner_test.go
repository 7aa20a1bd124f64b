package daemon_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/state"
)

// TestKilledPlannerCostsNoFire: a replica dies in the middle of planning
// (its clock hangs there; then its database sessions end, as they do when
// the process is killed). The replica that is left plans on its next tick:
// every fire from a second after the kill rotates in its window, once.
// The period is 4 s so that a loaded CI machine (the chaos test's kill -9
// storm runs beside it) still starts each job inside its 3.9 s window: a
// 2 s period once missed a window there by a few hundred milliseconds.
// (When planning was a River job unique while running, the dead replica's
// job stayed `running` until River's rescuer discarded it, a minute or
// more, and every fire meanwhile was lost.)
func TestKilledPlannerCostsNoFire(t *testing.T) {
	t.Parallel()
	// River's default rescue delay, the daemon's: a rescue must not be
	// what lets planning go on.
	const period, rescueAfter = 4 * time.Second, time.Minute
	b := setupDaemonWindow(t, 1, fmt.Sprintf("@every %s", period), period-100*time.Millisecond, 0)

	// The replica about to die has a pool of its own, named so that its
	// sessions can be ended.
	cfg, err := pgxpool.ParseConfig(b.url)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = "dying-replica"
	deadPool, err := pgxpool.NewWithConfig(b.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(deadPool.Close)
	deadDB := state.NewFromPool(deadPool, state.Options{})

	hung, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	var once sync.Once
	hangingClock := func() time.Time {
		// Its first reading of the clock is the first thing it plans.
		once.Do(func() {
			close(hung)
			<-release
		})
		return time.Now().UTC()
	}
	dying, err := daemon.New(deadPool, deadDB, b.set, daemon.Config{ID: "dying", Workers: 10, PlanInterval: 250 * time.Millisecond,
		RescueAfter: rescueAfter, RetryBase: 100 * time.Millisecond, RetryCap: time.Second, Now: hangingClock})
	require.NoError(t, err)
	require.NoError(t, dying.Start(b.ctx))
	select {
	case <-hung:
	case <-time.After(30 * time.Second):
		t.Fatal("the dying replica never began to plan")
	}

	// The kill: it takes no more jobs, and its sessions end.
	stopCtx, cancel := context.WithTimeout(b.ctx, time.Second)
	_ = dying.Stop(stopCtx)
	cancel()
	_, err = b.pool.Exec(b.ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'dying-replica' AND datname = current_database()`)
	require.NoError(t, err)
	killed := time.Now()
	b.startWith("survivor", func(cfg *daemon.Config) { cfg.RescueAfter = rescueAfter }, nil)

	// The fires whose windows open from a second after the kill on.
	first := killed.Add(time.Second).Truncate(period).Add(period).UTC()
	fires := []time.Time{first, first.Add(period), first.Add(2 * period)}
	succeeded := func() map[string]int {
		rows, err := b.db.History(b.ctx, "p00", 100)
		require.NoError(t, err)
		out := map[string]int{}
		for _, r := range rows {
			if r.Outcome == state.OutcomeSucceeded {
				out[r.RequestKey]++
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		done := succeeded()
		for _, f := range fires {
			if done[daemon.FireKey("p00", f)] == 0 {
				return false
			}
		}
		return true
	}, time.Until(fires[2])+20*time.Second, 100*time.Millisecond,
		"every fire after the kill rotates (succeeded: %v)", succeeded())
	done := succeeded()
	for _, f := range fires {
		require.Equal(t, 1, done[daemon.FireKey("p00", f)], "fire %s rotated once", f)
	}
	entries, err := b.db.Audit(b.ctx, "p00", 1000)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Action != "rotation.missed" {
			continue
		}
		// A fire before the survivor was up may be missed; the claim is
		// about the fires from a second after the kill.
		fire, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e.Detail["fire"]))
		require.NoError(t, err, "a missed fire names its fire: %v", e.Detail)
		require.True(t, fire.Before(first), "fire %s after the kill was missed: %v", fire, e.Detail)
	}
}
