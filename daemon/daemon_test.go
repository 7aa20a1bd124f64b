package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// recordingTarget is a target with nothing behind it that records when each
// credential was applied, so tests can check when rotations happened. It is
// for the daemon's tests: the real targets have their own suites.
type recordingTarget struct {
	mu      sync.Mutex
	applied []time.Time
	// onCreate, if set, runs in Create: a test's way to act between the
	// create and set steps.
	onCreate func()
	// retireErr, if set, is what Retire fails with.
	retireErr error
}

func (t *recordingTarget) Create(_ context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	if t.onCreate != nil {
		t.onCreate()
	}
	doc, err := json.Marshal(map[string]string{"value": req.Password.RevealString()})
	return targets.CreateResponse{Pending: secret.New(doc), Principal: "value"}, err
}

func (t *recordingTarget) Apply(context.Context, targets.ApplyRequest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.applied = append(t.applied, time.Now())
	return nil
}

func (t *recordingTarget) Check(context.Context, targets.CheckRequest) error     { return nil }
func (t *recordingTarget) Verify(context.Context, targets.VerifyRequest) error   { return nil }
func (t *recordingTarget) Restore(context.Context, targets.RestoreRequest) error { return nil }
func (t *recordingTarget) Retire(context.Context, targets.RetireRequest) error   { return t.retireErr }
func (t *recordingTarget) Close() error                                          { return nil }

func (t *recordingTarget) times() []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Time(nil), t.applied...)
}

type daemonBundle struct {
	t       *testing.T
	ctx     context.Context
	db      *state.DB
	files   *file.Store
	set     *daemon.PolicySet
	targets map[string]*recordingTarget
	pool    *pgxpool.Pool
	// url connects to the test's database (a replica with a pool of its own).
	url string
}

func setupDaemon(t *testing.T, policies int, spec string, guard time.Duration) *daemonBundle {
	return setupDaemonWindow(t, policies, spec, time.Second, guard)
}

func setupDaemonWindow(t *testing.T, policies int, spec string, window, guard time.Duration) *daemonBundle {
	t.Helper()
	ctx := context.Background()
	db, pg := rotationtest.State(t)
	require.NoError(t, daemon.MigrateRiver(ctx, pg.Pool))
	files := rotationtest.FileStore(t)

	b := &daemonBundle{t: t, ctx: ctx, db: db, pool: pg.Pool, url: pg.URL, files: files, set: &daemon.PolicySet{Policies: map[string]daemon.Scheduled{}},
		targets: map[string]*recordingTarget{}}
	for i := range policies {
		name := fmt.Sprintf("p%02d", i)
		target := &recordingTarget{}
		b.targets[name] = target
		b.set.Policies[name] = daemon.Scheduled{
			Plan: &schedule.Timing{Name: name, Schedule: schedule.MustParse(spec, "UTC"), Window: window,
				ExpectedDuration: 500 * time.Millisecond, GuardAfter: guard},
			Strategy: "single", Store: "file", SecretID: name, MaxAttempts: 3, Tags: []string{"load"},
			Open: func(context.Context) (rotator.Credential, error) {
				return rotator.Credential{Name: name, Strategy: targets.Single, Store: files, SecretID: name, Target: target,
					Canary: rotator.CanaryRetry{Attempts: 1}}, nil
			},
		}
	}
	return b
}

func (b *daemonBundle) start(id string) *daemon.Daemon {
	b.t.Helper()
	return b.startWith(id, nil, nil)
}

// startWith starts replica id with the tests' config changed by edit, and
// with onResult as its OnResult (either may be nil).
func (b *daemonBundle) startWith(id string, edit func(*daemon.Config), onResult func(daemon.RotateArgs, rotator.Result, error)) *daemon.Daemon {
	b.t.Helper()
	cfg := daemon.Config{ID: id, Workers: 10, PlanInterval: 250 * time.Millisecond,
		RescueAfter: 5 * time.Second, RetryBase: 100 * time.Millisecond, RetryCap: time.Second}
	if edit != nil {
		edit(&cfg)
	}
	d, err := daemon.New(b.pool, b.db, b.set, cfg)
	require.NoError(b.t, err)
	d.OnResult = onResult
	require.NoError(b.t, d.Start(b.ctx))
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Stop(ctx)
	})
	return d
}

// TestDaemonRunsOnItsClock: planning, the wait for the slot and the
// rotator read Config.Now. A daemon whose clock stands four minutes into a
// fire of 2030 rotates that fire at once, and times its steps on that clock.
func TestDaemonRunsOnItsClock(t *testing.T) {
	t.Parallel()
	b := setupDaemonWindow(t, 1, "@hourly", 30*time.Minute, 0)
	fire := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	at := fire.Add(4 * time.Minute)
	b.startWith("a", func(cfg *daemon.Config) { cfg.Now = func() time.Time { return at } }, nil)

	var rows []state.Rotation
	require.Eventually(t, func() bool {
		var err error
		rows, err = b.db.History(b.ctx, "p00", 10)
		return err == nil && len(rows) > 0 && rows[0].Outcome == state.OutcomeSucceeded
	}, 30*time.Second, 50*time.Millisecond, "the fire of the daemon's clock rotates")
	require.Len(t, rows, 1)
	require.Equal(t, daemon.FireKey("p00", fire), rows[0].RequestKey)
	require.Len(t, rows[0].Steps, len(rotator.Steps))
	for _, step := range rows[0].Steps {
		require.True(t, step.Started.Equal(at), "step %s started at %s on the rotator's clock", step.Step, step.Started)
	}
}

func TestDaemonDefersWhileARunUsesThePolicy(t *testing.T) {
	t.Parallel()
	const guard = 2 * time.Second
	b := setupDaemon(t, 1, "@every 1s", guard)
	target := b.targets["p00"]

	// A one-off run of 6s that uses the policy through its tag starts now.
	runStart := time.Now().UTC()
	_, err := b.db.AddOneOffRun(b.ctx, state.OneOffRunRequest{Name: "soak", Start: runStart, Duration: 6 * time.Second,
		Uses: []string{"tag:load"}, CreatedBy: "test"})
	require.NoError(t, err)
	runEnd := runStart.Add(6 * time.Second)

	b.start("a")
	require.Eventually(t, func() bool { return len(target.times()) >= 2 }, 30*time.Second, 100*time.Millisecond,
		"rotations resume after the run and its guard")
	for _, at := range target.times() {
		require.False(t, at.After(runStart) && at.Before(runEnd.Add(guard)),
			"a rotation applied at %s, inside the run [%s, %s) or its guard", at, runStart, runEnd.Add(guard))
	}
	entries, err := b.db.Audit(b.ctx, "p00", 1000)
	require.NoError(t, err)
	deferred := 0
	for _, e := range entries {
		if e.Action == "rotation.deferred" {
			deferred++
			require.Contains(t, fmt.Sprint(e.Detail["blocked_by"]), "soak")
		}
	}
	require.Positive(t, deferred, "deferrals are audited with the run that blocked them")
}

func TestDaemonRespectsLiveLeasesAndForgetsExpiredOnes(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, 1, "@every 1s", 0)
	target := b.targets["p00"]

	lease, err := b.db.StartLease(b.ctx, state.LeaseRequest{RunName: "live", Uses: []string{"p00"}, Holder: "test", TTL: 3 * time.Second})
	require.NoError(t, err)
	leaseStart := time.Now()
	b.start("a")

	// Heartbeats keep it live for 4s; then they stop and the TTL runs out.
	for range 8 {
		time.Sleep(500 * time.Millisecond)
		_, err := b.db.HeartbeatLease(b.ctx, lease.ID)
		require.NoError(t, err)
	}
	lastBeat := time.Now()
	require.Empty(t, target.times(), "no rotation while the lease is live")

	require.Eventually(t, func() bool { return len(target.times()) > 0 }, 20*time.Second, 100*time.Millisecond,
		"an expired lease stops blocking")
	require.True(t, target.times()[0].After(lastBeat.Add(3*time.Second-200*time.Millisecond)),
		"the first rotation waits for the TTL after the last heartbeat (lease from %s)", leaseStart)
}

func TestReplicasRotateEachFireExactlyOnce(t *testing.T) {
	t.Parallel()
	const period, wantFires = 2 * time.Second, 6
	// The window is most of the period: on a loaded machine a planning
	// tick may come a second late, and a fire whose window passed is
	// missed (and audited as such), not rotated.
	b := setupDaemonWindow(t, 50, fmt.Sprintf("@every %s", period), period-100*time.Millisecond, 0)
	// The replicas report each rotation; the test ends once every policy
	// has rotated wantFires fires.
	var mu sync.Mutex
	rotated := map[string]map[string]bool{}
	enough := make(chan struct{})
	onResult := func(args daemon.RotateArgs, res rotator.Result, err error) {
		if err != nil || res.Outcome != state.OutcomeSucceeded {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if rotated[args.Policy] == nil {
			rotated[args.Policy] = map[string]bool{}
		}
		// Only the result that brings its policy to wantFires may end the
		// wait: one that repeats a key (AlreadyDone) adds nothing.
		if rotated[args.Policy][args.Key] {
			return
		}
		rotated[args.Policy][args.Key] = true
		if len(rotated[args.Policy]) != wantFires {
			return
		}
		for name := range b.set.Policies {
			if len(rotated[name]) < wantFires {
				return
			}
		}
		close(enough)
	}
	var replicas []*daemon.Daemon
	for _, id := range []string{"a", "b", "c"} {
		replicas = append(replicas, b.startWith(id, nil, onResult))
	}
	select {
	case <-enough:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		for name := range b.set.Policies {
			if len(rotated[name]) < wantFires {
				t.Errorf("policy %s rotated %d fires", name, len(rotated[name]))
			}
		}
		t.Fatalf("not every policy rotated %d fires within 2m", wantFires)
	}
	// Drain all three, so no rotation is in flight while the rows are read.
	for _, d := range replicas {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		require.NoError(t, d.Stop(ctx))
		cancel()
	}

	// Every fire's key succeeded once (the unique index allows no second
	// success), and no fire between the first and the last was skipped.
	for name := range b.set.Policies {
		rows, err := b.db.History(b.ctx, name, 1000)
		require.NoError(t, err)
		fires := map[string]int{}
		for _, r := range rows {
			if r.Outcome == state.OutcomeSucceeded {
				fires[r.RequestKey]++
			}
		}
		require.GreaterOrEqual(t, len(fires), wantFires, "policy %s rotated on schedule", name)
		var times []time.Time
		for key, n := range fires {
			require.Equal(t, 1, n, "fire %s rotated more than once", key)
			at, err := time.Parse(time.RFC3339, key[len("fire:"+name+":"):])
			require.NoError(t, err)
			times = append(times, at)
		}
		first, last := times[0], times[0]
		for _, at := range times {
			if at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
		if skipped := int(last.Sub(first)/period) + 1 - len(times); skipped != 0 {
			entries, err := b.db.Audit(b.ctx, name, 1000)
			require.NoError(t, err)
			for _, e := range entries {
				t.Logf("%s %s %v", e.At.Format(time.TimeOnly), e.Action, e.Detail)
			}
			t.Fatalf("policy %s skipped %d fire(s) between %s and %s", name, skipped, first, last)
		}
		// A failed attempt (rolled back, then retried) applies again; it
		// must have been recorded as such. One stopped at set because its
		// window had closed never applied (the window rule: no set after
		// the window, whoever held the rotation back).
		failed := 0
		for _, r := range rows {
			if r.Outcome != state.OutcomeSucceeded {
				t.Logf("policy %s: rotation %s %s at %s: %s", name, r.Token, r.Outcome, r.Step, r.Error)
				if !strings.Contains(r.Error, daemon.ErrWindowClosed.Error()) {
					failed++
				}
			}
		}
		require.Len(t, b.targets[name].times(), len(fires)+failed, "policy %s applied once per attempt", name)
	}
}
