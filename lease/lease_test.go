package lease_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/secret"
)

// fakeSource counts what is asked of it. Leases are lease-1, lease-2, …;
// the heartbeat numbered goneAt (from 1) finds its lease gone, and
// heartbeats numbered in failing fail without an answer.
type fakeSource struct {
	mu         sync.Mutex
	started    []lease.Request
	heartbeats []string // the lease of each heartbeat
	ended      []string
	reads      []string // policy@lease/run
	goneAt     int
	failing    []int
	endErr     error
	creds      map[string]map[string]string
}

func (f *fakeSource) Start(_ context.Context, req lease.Request) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, req)
	return fmt.Sprintf("lease-%d", len(f.started)), nil
}

func (f *fakeSource) Heartbeat(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heartbeats = append(f.heartbeats, id)
	n := len(f.heartbeats)
	switch {
	case n == f.goneAt:
		return fmt.Errorf("%w: lease %s expired", lease.ErrGone, id)
	case slices.Contains(f.failing, n):
		return errors.New("connection refused")
	}
	return nil
}

func (f *fakeSource) End(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, id)
	return f.endErr
}

func (f *fakeSource) Read(_ context.Context, policies []string, leaseID, run string, each func(string, map[string]secret.Secret) error) error {
	for _, policy := range policies {
		f.mu.Lock()
		f.reads = append(f.reads, policy+"@"+leaseID+"/"+run)
		doc, ok := f.creds[policy]
		f.mu.Unlock()
		if !ok {
			return fmt.Errorf("policy %q: store unreachable", policy)
		}
		out := map[string]secret.Secret{}
		for k, v := range doc {
			out[k] = secret.FromString(v)
		}
		if err := each(policy, out); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSource) Close() {}

func (f *fakeSource) heartbeatsSoFar() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.heartbeats)
}

// reports collects what Held reports, as the CLI would print it.
type reports struct {
	mu    sync.Mutex
	lines []string
}

func (r *reports) report(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, msg)
}

func (r *reports) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func TestKeepReplacesALeaseFoundGone(t *testing.T) {
	src := &fakeSource{goneAt: 2}
	var out reports
	req := lease.Request{Run: "soak", Uses: []string{"checkout-db"}, Holder: "me@host:1", TTL: 60 * time.Millisecond}
	held, err := lease.Take(context.Background(), src, req, out.report)
	require.NoError(t, err)
	require.Equal(t, "lease-1", held.ID())

	start := time.Now()
	stop := held.Keep(context.Background())
	// Heartbeats every TTL/3 = 20ms: the second finds lease-1 gone, the
	// ones after renew lease-2.
	require.Eventually(t, func() bool { return len(src.heartbeatsSoFar()) >= 5 }, 5*time.Second, 5*time.Millisecond)
	stop()
	elapsed := time.Since(start)

	beats := src.heartbeatsSoFar()
	require.Equal(t, []string{"lease-1", "lease-1"}, beats[:2])
	for _, id := range beats[2:] {
		require.Equal(t, "lease-2", id, "heartbeats go to the new lease")
	}
	require.GreaterOrEqual(t, elapsed, time.Duration(len(beats))*req.TTL/3, "one heartbeat per TTL/3, not more")
	require.Equal(t, "lease-2", held.ID())
	require.Len(t, src.started, 2)
	require.Equal(t, req, src.started[1], "the new lease is taken for the same run, policies, holder and TTL")
	require.Equal(t, []string{
		"warning: lease lease-1 expired (no heartbeat got through within 60ms), so rotations may have run and the command may hold an old credential; took lease lease-2",
	}, out.all())

	held.End()
	require.Equal(t, []string{"lease-2"}, src.ended, "End ends the lease held now")

	after := len(src.heartbeatsSoFar())
	time.Sleep(3 * req.TTL / 3)
	require.Len(t, src.heartbeatsSoFar(), after, "no heartbeat after stop")
	stop() // a second stop is harmless
}

func TestKeepReportsAFailingHeartbeatOnceAndItsRecovery(t *testing.T) {
	src := &fakeSource{failing: []int{2, 3, 4}}
	var out reports
	held, err := lease.Take(context.Background(), src, lease.Request{Run: "soak", Uses: []string{"p"}, TTL: 30 * time.Millisecond}, out.report)
	require.NoError(t, err)
	stop := held.Keep(context.Background())
	require.Eventually(t, func() bool { return len(src.heartbeatsSoFar()) >= 6 }, 5*time.Second, 5*time.Millisecond)
	stop()
	require.Equal(t, []string{
		"warning: heartbeat of lease lease-1 failed (retrying every 10ms; the lease expires 30ms after the last success): connection refused",
		"lease lease-1 heartbeats again",
	}, out.all())
	require.Len(t, src.started, 1, "a failing heartbeat takes no new lease")
}

func TestKeepStopsWithItsContext(t *testing.T) {
	src := &fakeSource{}
	held, err := lease.Take(context.Background(), src, lease.Request{TTL: 30 * time.Millisecond}, func(string) {})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	stop := held.Keep(ctx)
	require.Eventually(t, func() bool { return len(src.heartbeatsSoFar()) >= 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return after the context ended")
	}
}

func TestEndReportsAFailureWithoutTheValue(t *testing.T) {
	src := &fakeSource{endErr: errors.New("database unreachable")}
	var out reports
	held, err := lease.Take(context.Background(), src, lease.Request{TTL: 30 * time.Second}, out.report)
	require.NoError(t, err)
	held.End()
	require.Equal(t, []string{"warning: could not end lease lease-1 (it expires by its TTL, 30s): database unreachable"}, out.all())
}

func TestReadEnvReadsUnderTheLeaseAndStopsAtTheFirstRefusal(t *testing.T) {
	src := &fakeSource{creds: map[string]map[string]string{
		"checkout-db": {"username": "u", "password": "pw-1"},
		"reports":     {"username": "r"},
	}}
	held, err := lease.Take(context.Background(), src, lease.Request{Run: "soak-42", TTL: time.Minute}, func(string) {})
	require.NoError(t, err)
	policies, err := lease.ParsePolicies([]string{"checkout-db", "reports=CHECKOUT_DB", "third"})
	require.NoError(t, err)

	_, err = held.ReadEnv(context.Background(), policies, nil)
	var input *lease.InputError
	require.ErrorAs(t, err, &input)
	require.Equal(t, `field "username" of policy "checkout-db" and field "username" of policy "reports" would both set CHECKOUT_DB_USERNAME: choose another prefix (--policy NAME=PREFIX) or --env-map`,
		err.Error())
	require.Equal(t, []string{"checkout-db@lease-1/soak-42", "reports@lease-1/soak-42"}, src.reads,
		"no policy is read past a collision")

	_, err = held.ReadEnv(context.Background(), policies[2:], nil)
	require.EqualError(t, err, `policy "third": store unreachable`)
	require.NotErrorAs(t, err, &input, "a read that fails is not an input error unless the source says so")
	require.NotContains(t, strings.Join(src.reads, " "), "pw-1")
}
