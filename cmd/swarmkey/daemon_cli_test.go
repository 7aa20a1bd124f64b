package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/state"
)

// daemonProcess is a `swarmkey serve` child whose log lines are collected.
type daemonProcess struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan error
}

func (c *cli) serve(t *testing.T, args ...string) *daemonProcess {
	t.Helper()
	cmd := c.command(append([]string{"serve", "--plan-interval", "250ms", "--drain-timeout", "5s"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	require.NoError(t, cmd.Start())
	d := &daemonProcess{cmd: cmd, done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.mu.Unlock()
			c.mu.Lock()
			c.printed.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
		}
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	require.Eventually(t, func() bool { return d.logged("swarmkey serving") }, 60*time.Second, 50*time.Millisecond, "serve starts")
	return d
}

func (d *daemonProcess) logged(s string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// testState is the state database as the CLI tests read it: the state
// package's API, and the test database's pool for checks in plain SQL.
type testState struct {
	*state.DB
	Pool *pgxpool.Pool
}

func (c *cli) stateDB(t *testing.T) *testState {
	t.Helper()
	db, err := state.Open(context.Background(), c.db.URL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return &testState{DB: db, Pool: c.db.Pool}
}

func TestRotateAsksTheDaemonAndRespectsRuns(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	c.serve(t)
	db := c.stateDB(t)

	_, err := db.AddOneOffRun(context.Background(), state.OneOffRunRequest{Name: "nightly-soak", Start: time.Now().Add(-time.Minute),
		Duration: time.Hour, Uses: []string{"checkout-db"}, CreatedBy: "test"})
	require.NoError(t, err)

	r := c.run("rotate", "checkout-db", "--wait")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, `"nightly-soak"`)
	require.Contains(t, r.stderr, "next allowed slot")
	_, ok := c.stage(providers.StageCurrent)
	require.False(t, ok, "nothing was rotated")

	r = c.run("rotate", "checkout-db", "--force", "--wait")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	for _, step := range []string{"create", "set", "test", "promote", "finish"} {
		require.Contains(t, r.stdout, "  "+step)
	}
	require.Contains(t, r.stdout, "rotated checkout-db")
	current, ok := c.stage(providers.StageCurrent)
	require.True(t, ok)
	require.True(t, c.logsIn(current))

	entries, err := db.Audit(context.Background(), "checkout-db", 100)
	require.NoError(t, err)
	var forced *state.AuditEntry
	for i := range entries {
		if entries[i].Action == "rotation.forced" {
			forced = &entries[i]
		}
	}
	require.NotNil(t, forced, "a forced rotation leaves an audit row")
	require.Equal(t, "operator:"+currentUser(t), forced.Actor)
	require.Contains(t, fmt.Sprint(forced.Detail["overrides"]), "nightly-soak")
	c.requireNoLeak(current.Password)
}

func currentUser(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("id", "-un").Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

func TestServeReloadKeepsOldPoliciesOnABadFileAndDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")
	d := c.serve(t)
	good, err := os.ReadFile(c.config)
	require.NoError(t, err)

	c.write(c.config, strings.Replace(string(good), "strategy: alternating", "strategy: alternating\n    bogus_field: 1", 1))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return d.logged("reload failed; keeping the old policies") }, 10*time.Second, 50*time.Millisecond)
	require.True(t, d.logged("bogus_field"), "the log says why")

	// The operator's CLI reads a good copy; the daemon's file is broken.
	daemonConfig := c.config
	c.config = daemonConfig + ".client.yaml"
	c.write(c.config, string(good))
	r := c.run("rotate", "checkout-db", "--wait")
	c.config = daemonConfig
	require.Equal(t, 0, r.code, "the daemon still rotates with the old policies: "+r.stdout+r.stderr)

	c.write(c.config, string(good))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return d.logged("reloaded") }, 10*time.Second, 50*time.Millisecond)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.done:
		require.NoError(t, err, "serve exits 0 after a drain")
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of SIGTERM")
	}
	require.True(t, d.logged("draining"))
	require.True(t, d.logged("stopped"))
}

func TestRunDueRotatesWhatIsDueOnce(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")
	cfg, err := os.ReadFile(c.config)
	require.NoError(t, err)
	// Fires every 10s and may start within 9.9s of a fire: due nearly always.
	c.write(c.config, strings.Replace(string(cfg), c.schedule, "schedule: \"@every 10s\"\n    window: 9900ms", 1))

	var r result
	require.Eventually(t, func() bool {
		r = c.run("run-due")
		return strings.Contains(r.stdout, "rotated")
	}, 30*time.Second, time.Second, "run-due rotates the due policy")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	current, ok := c.stage(providers.StageCurrent)
	require.True(t, ok)
	require.True(t, c.logsIn(current))

	again := c.run("run-due")
	require.Equal(t, 0, again.code, again.stdout+again.stderr)
	history := c.run("history", "checkout-db")
	rotations := strings.Count(history.stdout, "succeeded")
	// The second run-due may meet the next fire (every 10s), never the same.
	require.LessOrEqual(t, rotations, 2, history.stdout)
	c.requireNoLeak(current.Password)
}

func TestKilledReplicaLeavesARotationAnotherFinishes(t *testing.T) {
	t.Parallel()
	// The canary sleeps, so a replica can be killed in the middle of it.
	c := newCLI(t, "single", "SELECT pg_sleep(4)")
	a := c.serve(t, "--rescue-after", "15s", "--id", "replica-a")
	b := c.serve(t, "--rescue-after", "15s", "--id", "replica-b")
	db := c.stateDB(t)

	r := c.run("rotate", "checkout-db")
	require.Equal(t, 0, r.code, r.stderr)

	var running state.Rotation
	require.Eventually(t, func() bool {
		var err error
		running, err = db.RunningRotation(context.Background(), "checkout-db")
		return err == nil && running.Step == "set"
	}, 30*time.Second, 50*time.Millisecond, "a rotation reaches its canary")
	victim, survivor := a, b
	if b.logged(running.Token) {
		victim, survivor = b, a
	}
	require.True(t, victim.logged(running.Token), "the victim runs the rotation")
	require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))

	// River rescues the job after --rescue-after (its rescuer looks every
	// 30s, and the survivor may first have to win the leader election);
	// the survivor resumes the rotation from its recorded step.
	finished := assert.Eventually(t, func() bool {
		row, err := db.Rotation(context.Background(), running.Token)
		return err == nil && row.Outcome == state.OutcomeSucceeded
	}, 90*time.Second, 250*time.Millisecond, "another replica finishes the rotation")
	if !finished {
		survivor.mu.Lock()
		t.Fatalf("survivor's log:\n%s", strings.Join(survivor.lines, "\n"))
	}
	row, err := db.Rotation(context.Background(), running.Token)
	require.NoError(t, err)
	require.GreaterOrEqual(t, row.Resumes, 1)
	require.True(t, survivor.logged(running.Token))
	current, ok := c.stage(providers.StageCurrent)
	require.True(t, ok)
	require.True(t, c.logsIn(current))
	_, pending := c.stage(providers.StagePending)
	require.False(t, pending)
}

func TestThreeServeReplicasRotateEachFireOnce(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	const period, wantFires = 2 * time.Second, 10
	// The window is most of the period: on a loaded machine a planning
	// tick may come a second late, and a fire whose window passed is
	// missed, not rotated.
	var b strings.Builder
	fmt.Fprintf(&b, "database: env:SWARMKEY_DATABASE_URL\nstores:\n  file:\n    dir: secrets\n    key_file: secrets.key\npolicies:\n")
	for i := range 50 {
		fmt.Fprintf(&b, "  - name: shared-%02d\n    strategy: single\n    schedule: \"@every %s\"\n    window: %s\n    target:\n      generated: {}\n",
			i, period, period-100*time.Millisecond)
	}
	c.write(c.config, b.String())

	var replicas []*daemonProcess
	for _, id := range []string{"a", "b", "c"} {
		replicas = append(replicas, c.serve(t, "--id", "replica-"+id))
	}
	// The replicas run until every policy has rotated wantFires fires.
	db := c.stateDB(t)
	const patience = 3 * time.Minute
	for deadline := time.Now().Add(patience); ; {
		var behind []string
		for i := range 50 {
			name := fmt.Sprintf("shared-%02d", i)
			if n := succeededFires(t, db, name); n < wantFires {
				behind = append(behind, fmt.Sprintf("%s (%d)", name, n))
			}
		}
		if len(behind) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d policies have rotated fewer than %d fires: %s", patience, len(behind), wantFires, strings.Join(behind, ", "))
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, d := range replicas {
		require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, d := range replicas {
		select {
		case err := <-d.done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("a replica did not drain within 30s")
		}
	}

	for i := range 50 {
		name := fmt.Sprintf("shared-%02d", i)
		rows, err := db.History(context.Background(), name, 1000)
		require.NoError(t, err)
		var fires []time.Time
		actors := map[string]bool{}
		for _, r := range rows {
			require.NotEqual(t, state.OutcomeRunning, r.Outcome, "%s: a drained replica left rotation %s running", name, r.Token)
			if r.Outcome != state.OutcomeSucceeded {
				continue
			}
			at, err := time.Parse(time.RFC3339, strings.TrimPrefix(r.RequestKey, "fire:"+name+":"))
			require.NoError(t, err, r.RequestKey)
			fires = append(fires, at)
			actors[r.Actor] = true
		}
		require.GreaterOrEqual(t, len(fires), wantFires, "%s rotated on schedule", name)
		seen := map[time.Time]bool{}
		first, last := fires[0], fires[0]
		for _, f := range fires {
			require.False(t, seen[f], "%s: fire %s rotated twice", name, f)
			seen[f] = true
			if f.Before(first) {
				first = f
			}
			if f.After(last) {
				last = f
			}
		}
		require.Equal(t, int(last.Sub(first)/period)+1, len(fires), "%s skipped a fire between %s and %s", name, first, last)
	}
	// The work was shared: every replica ran rotations.
	for _, d := range replicas {
		require.True(t, d.logged("rotation succeeded") || d.logged("step completed"), "a replica never rotated")
	}
}

// succeededFires counts the fires of policy that rotated successfully.
func succeededFires(t *testing.T, db *testState, policy string) int {
	t.Helper()
	rows, err := db.History(context.Background(), policy, 1000)
	require.NoError(t, err)
	fires := map[string]bool{}
	for _, r := range rows {
		if r.Outcome == state.OutcomeSucceeded {
			fires[r.RequestKey] = true
		}
	}
	return len(fires)
}

func TestPlanShowsSlotsAndWhatPushedThem(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	db := c.stateDB(t)
	// The policy fires daily (c.fire) with a one-hour window; a run holds
	// the first half hour of the next fire, a second one the whole window
	// of the fire after.
	next := c.fire
	for _, run := range []state.OneOffRunRequest{
		{Name: "midnight-soak", Start: next.Add(-time.Minute), Duration: 31 * time.Minute},
		{Name: "all-nighter", Start: next.Add(23 * time.Hour), Duration: 3 * time.Hour},
	} {
		run.Uses, run.CreatedBy = []string{"checkout-db"}, "test"
		_, err := db.AddOneOffRun(context.Background(), run)
		require.NoError(t, err)
	}

	r := c.run("plan", "--policy", "checkout-db", "--to", "+49h", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var rows []struct {
		Policy      string     `json:"policy"`
		WindowStart time.Time  `json:"window_start"`
		Slot        *time.Time `json:"slot"`
		BlockedBy   []string   `json:"blocked_by"`
		PushedBy    []string   `json:"pushed_by"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows), r.stdout)
	require.GreaterOrEqual(t, len(rows), 2, r.stdout)
	require.True(t, rows[0].WindowStart.Equal(next), r.stdout)
	require.NotNil(t, rows[0].Slot)
	require.True(t, rows[0].Slot.Equal(next.Add(30*time.Minute)), "the slot waits for the run: %s", r.stdout)
	require.Contains(t, strings.Join(rows[0].PushedBy, " "), "midnight-soak")
	require.Nil(t, rows[1].Slot, "the next fire is deferred: %s", r.stdout)
	require.Contains(t, strings.Join(rows[1].BlockedBy, " "), "all-nighter")

	// The table shows each instant one way: RFC 3339 to the second, in the
	// user's zone (a window seconds long must not read "05:23 – 05:23").
	r = c.run("plan", "--policy", "checkout-db", "--to", "+49h")
	require.Equal(t, 0, r.code, r.stderr)
	at := func(t time.Time) string { return t.Local().Format(time.RFC3339) }
	require.Contains(t, r.stdout, at(next)+" – "+at(next.Add(time.Hour)), r.stdout)
	require.Contains(t, r.stdout, at(next.Add(30*time.Minute)), r.stdout)
	require.Regexp(t, `"all-nighter" until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)`, r.stdout)

	r = c.run("plan", "--from", "tomorrow")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--from")
}

// rotate without --local must not queue a request that no daemon will take:
// with no `serve` running (one ran before, so River's tables exist) it says
// so at once, points at --local, and inserts no job.
func TestRotateWithoutADaemonSaysSoAndQueuesNothing(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	d := c.serve(t)
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of SIGTERM")
	}

	for _, args := range [][]string{{"rotate", "checkout-db"}, {"rotate", "checkout-db", "--wait"}} {
		r := c.run(args...)
		require.Equal(t, 1, r.code, "%v: %s%s", args, r.stdout, r.stderr)
		require.Contains(t, r.stderr, "no swarmkey daemon is running")
		require.Contains(t, r.stderr, "swarmkey rotate checkout-db --local")
		require.NotContains(t, r.stdout, "asked the daemon")
	}
	var jobs int
	require.NoError(t, c.stateDB(t).Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = 'swarmkey_rotate'`).Scan(&jobs))
	require.Zero(t, jobs, "nothing was queued for a later daemon")
}
