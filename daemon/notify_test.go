package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/notify"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

// failingTarget refuses every Apply; it remembers the passwords it was
// given, so the test can search everything for them.
type failingTarget struct {
	recordingTarget
	mu        sync.Mutex
	passwords []string
}

func (t *failingTarget) Create(ctx context.Context, req targets.CreateRequest) (targets.CreateResponse, error) {
	t.mu.Lock()
	t.passwords = append(t.passwords, req.Password.RevealString())
	t.mu.Unlock()
	return t.recordingTarget.Create(ctx, req)
}

func (t *failingTarget) Apply(context.Context, targets.ApplyRequest) error {
	return errors.New("the database refused the new role password")
}

func (t *failingTarget) generated() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.passwords...)
}

// webhookSink is a receiver on 127.0.0.1 that checks each request's
// signature and keeps the events.
type webhookSink struct {
	mu     sync.Mutex
	key    string
	events []notify.Event
	bodies []string
	bad    []error
}

func newWebhookSink(t *testing.T) (*webhookSink, notify.Sink) {
	s := &webhookSink{key: "hmac-key-" + t.Name()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := notify.Verify(r.Header.Get(notify.SignatureHeader), body, []byte(s.key), 0, time.Now()); err != nil {
			s.bad = append(s.bad, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e notify.Event
		if err := json.Unmarshal(body, &e); err != nil {
			s.bad = append(s.bad, err)
		}
		s.events = append(s.events, e)
		s.bodies = append(s.bodies, string(body))
	}))
	t.Cleanup(srv.Close)
	return s, notify.Sink{Name: "hook", Kind: notify.Webhook, URL: srv.URL,
		Credential: func(context.Context) (secret.Secret, error) { return secret.FromString(s.key), nil }}
}

func (s *webhookSink) got() ([]notify.Event, []string, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notify.Event(nil), s.events...), append([]string(nil), s.bodies...), append([]error(nil), s.bad...)
}

func (s *webhookSink) ofKind(k notify.Kind) []notify.Event {
	events, _, _ := s.got()
	var out []notify.Event
	for _, e := range events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func notifierFor(sink notify.Sink, logs io.Writer, threshold time.Duration) *notify.Notifier {
	return notify.New(notify.Config{Sinks: []notify.Sink{sink}, Routes: []notify.Route{{Sinks: []string{sink.Name}}},
		DeferralThreshold: threshold, RetryBase: 50 * time.Millisecond, RetryCap: 200 * time.Millisecond},
		slog.New(slog.NewTextHandler(logs, nil)))
}

// TestRotationFailuresNotify: a rotation attempt that fails is notified as
// failed, the last one (the attempt limit) as needs_attention, each with
// the policy, its tags, the rotation's token and the reason; no generated
// password is in any body or log.
func TestRotationFailuresNotify(t *testing.T) {
	t.Parallel()
	b := setupDaemonWindow(t, 1, "@every 20s", 10*time.Second, 0)
	target := &failingTarget{}
	p := b.set.Policies["p00"]
	p.MaxAttempts = 2
	p.Open = func(context.Context) (rotator.Credential, error) {
		return rotator.Credential{Name: "p00", Strategy: targets.Single, Store: b.files, SecretID: "p00", Target: target,
			Canary: rotator.CanaryRetry{Attempts: 1}}, nil
	}
	b.set.Policies["p00"] = p
	sink, s := newWebhookSink(t)
	var logs rotationtest.LogBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	b.startWith("a", func(cfg *daemon.Config) {
		cfg.Logger = logger
		cfg.Notifier = notifierFor(s, &logs, time.Hour)
	}, nil)

	require.Eventually(t, func() bool { return len(sink.ofKind(notify.NeedsAttention)) == 1 }, 60*time.Second, 50*time.Millisecond,
		"the attempt limit is notified")
	failed, attention := sink.ofKind(notify.Failed), sink.ofKind(notify.NeedsAttention)[0]
	// The first of two attempts failed and was retried. (The next fire,
	// 20 s on the wall clock's grid, may already have failed once too.)
	require.NotEmpty(t, failed)
	require.Equal(t, "p00", failed[0].Policy)
	require.Equal(t, []string{"load"}, failed[0].Tags)
	require.Equal(t, "failed", failed[0].Outcome)
	require.Contains(t, failed[0].Reason, "the database refused the new role password")
	require.Equal(t, "1", failed[0].Detail["attempt"])
	require.Equal(t, "true", failed[0].Detail["rolled_back"])
	require.Equal(t, "needs_attention", attention.Outcome)
	require.Contains(t, attention.Reason, "attempt limit 2 reached")
	require.NotEqual(t, failed[0].Rotation, attention.Rotation)

	rows, err := b.db.History(b.ctx, "p00", 10)
	require.NoError(t, err)
	require.Equal(t, rows[0].Token, attention.Rotation)
	require.Equal(t, state.OutcomeNeedsAttention, rows[0].Outcome)

	_, bodies, bad := sink.got()
	require.Empty(t, bad, "every request carried a valid signature")
	passwords := target.generated()
	require.NotEmpty(t, passwords)
	for _, pw := range passwords {
		for _, text := range append(bodies, logs.String()) {
			require.NotContains(t, text, pw)
		}
	}
}

// TestDeadReceiverHoldsUpNoRotation: with every notification going to a
// receiver that is gone, a failing policy still ends needs_attention and
// another keeps rotating; the deliveries are given up, logged and counted.
func TestDeadReceiverHoldsUpNoRotation(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, 2, "@every 2s", 0)
	p := b.set.Policies["p00"]
	p.MaxAttempts = 1
	p.Open = func(context.Context) (rotator.Credential, error) {
		return rotator.Credential{Name: "p00", Strategy: targets.Single, Store: b.files, SecretID: "p00", Target: &failingTarget{},
			Canary: rotator.CanaryRetry{Attempts: 1}}, nil
	}
	b.set.Policies["p00"] = p
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	var logs rotationtest.LogBuffer
	n := notify.New(notify.Config{Sinks: []notify.Sink{{Name: "dead", Kind: notify.Webhook, URL: dead.URL,
		Credential: func(context.Context) (secret.Secret, error) { return secret.FromString("k"), nil }}},
		Routes: []notify.Route{{Sinks: []string{"dead"}}}, MaxAttempts: 2, RetryBase: 50 * time.Millisecond, RetryCap: 100 * time.Millisecond},
		slog.New(slog.NewTextHandler(&logs, nil)))
	metrics := daemon.NewMetrics(2)
	require.NoError(t, n.Register(metrics.Registry))
	b.startWith("a", func(cfg *daemon.Config) { cfg.Notifier = n }, nil)

	require.Eventually(t, func() bool { return len(b.targets["p01"].times()) >= 3 }, 60*time.Second, 50*time.Millisecond,
		"the healthy policy keeps rotating")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "notification not delivered; giving up") },
		30*time.Second, 50*time.Millisecond)
	rows, err := b.db.History(b.ctx, "p00", 10)
	require.NoError(t, err)
	require.NotEmpty(t, rows)
	// Under load a fire's window can close mid-rotation (failed, rolled
	// back, audited as missed): the failing policy's rotations that ran to
	// the attempt limit end needs_attention.
	attention := 0
	for _, r := range rows {
		if r.Outcome == state.OutcomeNeedsAttention {
			attention++
		}
	}
	require.Positive(t, attention, "the failing policy ended needs_attention")
	families, err := metrics.Registry.Gather()
	require.NoError(t, err)
	var undelivered float64
	for _, f := range families {
		if f.GetName() == "swarmkey_notifications_undelivered_total" {
			for _, m := range f.GetMetric() {
				undelivered += m.GetCounter().GetValue()
			}
		}
	}
	require.Positive(t, undelivered)
}

// TestExpiredLeaseNotifiesOnce: a lease that stops heartbeating is audited
// and notified once, with its run, holder and policies, however many
// planning ticks follow; a lease that ended is not.
func TestExpiredLeaseNotifiesOnce(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, 2, "@every 2s", 0)
	lost, err := b.db.StartLease(b.ctx, state.LeaseRequest{RunName: "soak", Uses: []string{"tag:load"}, Holder: "host-a pid 7", TTL: time.Second})
	require.NoError(t, err)
	ended, err := b.db.StartLease(b.ctx, state.LeaseRequest{RunName: "smoke", Uses: []string{"p00"}, Holder: "host-b", TTL: time.Second})
	require.NoError(t, err)
	_, err = b.db.EndLease(b.ctx, ended.ID)
	require.NoError(t, err)
	sink, s := newWebhookSink(t)
	b.startWith("a", func(cfg *daemon.Config) { cfg.Notifier = notifierFor(s, io.Discard, time.Hour) }, nil)

	require.Eventually(t, func() bool { return len(sink.ofKind(notify.LeaseExpired)) == 1 }, 30*time.Second, 50*time.Millisecond)
	e := sink.ofKind(notify.LeaseExpired)[0]
	require.Equal(t, []string{"p00", "p01"}, e.Policies)
	require.Equal(t, []string{"load"}, e.Tags)
	require.Equal(t, lost.ID, e.Detail["lease"])
	require.Equal(t, "soak", e.Detail["run"])
	require.Equal(t, "host-a pid 7", e.Detail["holder"])

	// Later planning ticks report nothing more: wait until the planner has
	// planned two more fires of each policy (every 2s; it ticks every
	// 250ms, so many ticks ran meanwhile).
	countPlanned := func() int {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM river_job WHERE kind = 'swarmkey_rotate'`).Scan(&n))
		return n
	}
	planned0 := countPlanned()
	require.Eventually(t, func() bool { return countPlanned() >= planned0+4 }, 30*time.Second, 50*time.Millisecond)
	var jobs int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM river_job WHERE kind = 'swarmkey_notify' AND args->'event'->>'event' = 'lease_expired'`).Scan(&jobs))
	require.Equal(t, 1, jobs)
	entries, err := b.db.Audit(b.ctx, "", 100)
	require.NoError(t, err)
	expired := 0
	for _, a := range entries {
		if a.Action == "lease.expired" {
			expired++
			require.Equal(t, lost.ID, a.Detail["lease"])
		}
	}
	require.Equal(t, 1, expired)
}

// TestOverdueAndLongDeferralsNotifyOnce plans on a fixed clock: a
// credential past max_age is notified once per credential; of the two
// fires a run defers, the one it pushes back by more than the threshold
// (90m: 00:00 to 02:10) is notified, once, and the other (01:00, by 70m)
// is not.
func TestOverdueAndLongDeferralsNotifyOnce(t *testing.T) {
	t.Parallel()
	b := setupDaemon(t, 1, "@hourly", 0)
	p := b.set.Policies["p00"]
	p.Plan.Window, p.Plan.MaxAge = 30*time.Minute, 24*time.Hour
	b.set.Policies["p00"] = p
	now := time.Date(2030, 1, 1, 0, 5, 0, 0, time.UTC)
	_, err := b.db.AddOneOffRun(b.ctx, state.OneOffRunRequest{Name: "soak", Start: now.Add(-time.Hour), Duration: 3*time.Hour + 5*time.Minute,
		Uses: []string{"p00"}, CreatedBy: "test"})
	require.NoError(t, err)
	require.NoError(t, b.db.EnsurePolicies(b.ctx, []state.PolicyState{{Policy: "p00", Strategy: "single", Store: "file", SecretID: "p00"}}))
	_, err = b.pool.Exec(b.ctx, `UPDATE policy_state SET rotated_at = $1 WHERE policy = 'p00'`, now.Add(-48*time.Hour))
	require.NoError(t, err)

	clock := now
	_, s := newWebhookSink(t)
	d, err := daemon.New(b.pool, b.db, b.set, daemon.Config{Now: func() time.Time { return clock }, Notifier: notifierFor(s, io.Discard, 90*time.Minute)})
	require.NoError(t, err)
	_, err = d.PlanOnce(b.ctx)
	require.NoError(t, err)
	clock = now.Add(2 * time.Minute) // past the next check
	_, err = d.PlanOnce(b.ctx)
	require.NoError(t, err)

	rows, err := b.pool.Query(b.ctx, `SELECT args FROM river_job WHERE kind = 'swarmkey_notify' ORDER BY id`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var raw []byte
		require.NoError(t, rows.Scan(&raw))
		var args notify.DeliveryArgs
		require.NoError(t, json.Unmarshal(raw, &args))
		e := args.Event
		got = append(got, string(e.Kind)+" "+e.Detail["fire"]+e.Detail["overdue_since"]+" next "+e.Detail["next_start"])
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{
		"deferred 2030-01-01T00:00:00Z next 2030-01-01T02:10:00Z",
		"overdue 2029-12-31T00:05:00Z next ",
	}, got)
}
