package notify_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/notify"
	"github.com/swarmkey/swarmkey/secret"
)

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func TestSignatureVerifiesAndRefusesTamperingAndReplays(t *testing.T) {
	t.Parallel()
	key := []byte(randomKey(t))
	body := []byte(`{"id":"n1","event":"failed","policy":"p"}`)
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	header := notify.Sign(key, body, at)
	require.Regexp(t, `^t=\d+,v1=[0-9a-f]{64}$`, header)

	require.NoError(t, notify.Verify(header, body, key, 0, at))
	require.NoError(t, notify.Verify(header, body, key, 0, at.Add(4*time.Minute)), "within the default tolerance")
	require.ErrorIs(t, notify.Verify(header, []byte(`{"id":"n1","event":"failed","policy":"q"}`), key, 0, at), notify.ErrSignatureMismatch)
	require.ErrorIs(t, notify.Verify(header, body, []byte("another key"), 0, at), notify.ErrSignatureMismatch)
	require.ErrorIs(t, notify.Verify(header, body, key, 0, at.Add(6*time.Minute)), notify.ErrSignatureExpired, "a replay after the tolerance")
	require.ErrorIs(t, notify.Verify(header, body, key, time.Minute, at.Add(2*time.Minute)), notify.ErrSignatureExpired)
	require.ErrorIs(t, notify.Verify(header, body, key, 0, at.Add(-6*time.Minute)), notify.ErrSignatureExpired, "from the future")

	// A new timestamp with the old signature is refused: t is signed too.
	sig := header[strings.Index(header, ",v1="):]
	moved := "t=" + strconv.FormatInt(at.Add(time.Hour).Unix(), 10) + sig
	require.ErrorIs(t, notify.Verify(moved, body, key, 0, at.Add(time.Hour)), notify.ErrSignatureMismatch)

	for _, bad := range []string{"", "v1=abcd", "t=1", "t=x,v1=ab", "t=1,v1=zz", "garbage"} {
		require.ErrorIs(t, notify.Verify(bad, body, key, 0, at), notify.ErrBadSignatureHeader, "header %q", bad)
	}
}

// receiver is a webhook endpoint on 127.0.0.1 that records what it gets
// and answers with the codes queued in answers (then 200).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []request
	answers []int
}

type request struct {
	path   string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{path: req.URL.Path, header: req.Header.Clone(), body: body})
		code := http.StatusOK
		if len(r.answers) > 0 {
			code, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func (r *receiver) waitFor(t *testing.T, n int) []request {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.requests()) >= n }, 30*time.Second, 20*time.Millisecond,
		"the receiver gets %d request(s)", n)
	return r.requests()
}

func riverPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	db := pgtest.New(t)
	migrator, err := rivermigrate.New(riverpgxv5.New(db.Pool), nil)
	require.NoError(t, err)
	_, err = migrator.Migrate(context.Background(), rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	return db.Pool
}

// startClient runs a River client that works the notifier's deliveries.
func startClient(t *testing.T, pool *pgxpool.Pool, n *notify.Notifier) *river.Client[pgx.Tx] {
	t.Helper()
	workers := river.NewWorkers()
	n.AddWorker(workers)
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:            map[string]river.QueueConfig{notify.Queue: {MaxWorkers: notify.QueueWorkers}},
		Workers:           workers,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c
}

func webhook(name, url, key string) notify.Sink {
	return notify.Sink{Name: name, Kind: notify.Webhook, URL: url,
		Credential: func(context.Context) (secret.Secret, error) { return secret.FromString(key), nil }}
}

func slack(name, url string) notify.Sink {
	return notify.Sink{Name: name, Kind: notify.Slack,
		Credential: func(context.Context) (secret.Secret, error) { return secret.FromString(url), nil }}
}

// metric is the value of the counter name with labels in reg; 0 if none.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func newNotifier(t *testing.T, cfg notify.Config, logs io.Writer) (*notify.Notifier, *prometheus.Registry) {
	t.Helper()
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryCap = 50*time.Millisecond, 200*time.Millisecond
	}
	n := notify.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	reg := prometheus.NewRegistry()
	require.NoError(t, n.Register(reg))
	return n, reg
}

// TestWebhookAndSlackBodies: one event reaches a webhook sink as signed
// JSON and a Slack sink as an incoming-webhook message at its secret URL;
// neither the HMAC key nor the Slack URL's token is in any body or log.
func TestWebhookAndSlackBodies(t *testing.T) {
	t.Parallel()
	pool := riverPool(t)
	hook, chat := newReceiver(t), newReceiver(t)
	key, token := randomKey(t), randomKey(t)
	var logs rotationtest.LogBuffer
	n, reg := newNotifier(t, notify.Config{
		Sinks:  []notify.Sink{webhook("oncall", hook.srv.URL+"/hook", key), slack("chat", chat.srv.URL+"/services/T0/B0/"+token)},
		Routes: []notify.Route{{Sinks: []string{"oncall", "chat"}}},
	}, &logs)
	client := startClient(t, pool, n)

	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	n.Enqueue(context.Background(), client, notify.Event{Kind: notify.NeedsAttention, At: at, Policy: "checkout-db",
		Tags: []string{"payments"}, Rotation: "0190aaaa-0000-7000-8000-000000000001", Outcome: "needs_attention",
		Reason: "attempt limit 5 reached <@here>", Detail: map[string]string{"step": "set"}})

	got := hook.waitFor(t, 1)[0]
	require.Equal(t, "/hook", got.path)
	require.Equal(t, "application/json", got.header.Get("Content-Type"))
	require.Equal(t, "needs_attention", got.header.Get("Swarmkey-Event"))
	require.NoError(t, notify.Verify(got.header.Get(notify.SignatureHeader), got.body, []byte(key), 0, time.Now()))
	var e notify.Event
	require.NoError(t, json.Unmarshal(got.body, &e))
	require.NotEmpty(t, e.ID)
	require.Equal(t, got.header.Get("Swarmkey-Notification"), e.ID)
	require.Equal(t, notify.Event{ID: e.ID, Kind: notify.NeedsAttention, At: at, Policy: "checkout-db", Tags: []string{"payments"},
		Rotation: "0190aaaa-0000-7000-8000-000000000001", Outcome: "needs_attention", Reason: "attempt limit 5 reached <@here>",
		Detail: map[string]string{"step": "set"}}, e)

	msg := chat.waitFor(t, 1)[0]
	require.Equal(t, "/services/T0/B0/"+token, msg.path, "a Slack sink posts to its secret URL")
	require.Empty(t, msg.header.Get(notify.SignatureHeader))
	var slackMsg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(msg.body, &slackMsg))
	require.Equal(t, "swarmkey: rotation of checkout-db needs attention: attempt limit 5 reached &lt;@here&gt;", slackMsg.Text,
		"mrkdwn's reserved characters are escaped, so a reason cannot mention anyone")
	require.Len(t, slackMsg.Blocks, 3)
	require.Contains(t, slackMsg.Blocks[1].Text.Text, "*rotation:* 0190aaaa-0000-7000-8000-000000000001")
	require.Contains(t, slackMsg.Blocks[1].Text.Text, "*step:* set")

	require.Eventually(t, func() bool {
		return metric(t, reg, "swarmkey_notification_deliveries_total", map[string]string{"sink": "chat", "result": "delivered"}) == 1 &&
			metric(t, reg, "swarmkey_notification_deliveries_total", map[string]string{"sink": "oncall", "result": "delivered"}) == 1
	}, 10*time.Second, 20*time.Millisecond)
	for _, text := range []string{string(got.body), string(msg.body), logs.String()} {
		require.NotContains(t, text, key)
		require.NotContains(t, text, token)
	}
}

// TestRoutesByPolicyTagAndEvent: each sink gets the events of the
// policies and tags its routes name, of the kinds they select, each once.
func TestRoutesByPolicyTagAndEvent(t *testing.T) {
	t.Parallel()
	pool := riverPool(t)
	byName, byTag, overdue := newReceiver(t), newReceiver(t), newReceiver(t)
	key := randomKey(t)
	n, _ := newNotifier(t, notify.Config{
		Sinks: []notify.Sink{webhook("by-name", byName.srv.URL, key), webhook("by-tag", byTag.srv.URL, key), webhook("overdue", overdue.srv.URL, key)},
		Routes: []notify.Route{
			{Policies: []string{"p1"}, Sinks: []string{"by-name"}},
			{Tags: []string{"payments"}, Kinds: []notify.Kind{notify.Failed, notify.LeaseExpired}, Sinks: []string{"by-tag"}},
			{Kinds: []notify.Kind{notify.Overdue}, Sinks: []string{"overdue", "by-name"}},
		},
	}, io.Discard)
	client := startClient(t, pool, n)
	ctx := context.Background()
	for _, e := range []notify.Event{
		{Kind: notify.Failed, Policy: "p1"},                                                     // by-name
		{Kind: notify.Failed, Policy: "p2", Tags: []string{"payments"}},                         // by-tag
		{Kind: notify.NeedsAttention, Policy: "p2", Tags: []string{"payments"}},                 // nobody: by-tag takes failed and lease_expired
		{Kind: notify.Overdue, Policy: "p3"},                                                    // overdue, by-name
		{Kind: notify.Overdue, Policy: "p1"},                                                    // overdue, by-name (once)
		{Kind: notify.LeaseExpired, Policies: []string{"p1", "p2"}, Tags: []string{"payments"}}, // by-name, by-tag
		{Kind: notify.Deferred, Policy: "p4", Tags: []string{"other"}},                          // nobody
	} {
		n.Enqueue(ctx, client, e)
	}
	seen := func(r *receiver, n int) []string {
		var out []string
		for _, req := range r.waitFor(t, n) {
			var e notify.Event
			require.NoError(t, json.Unmarshal(req.body, &e))
			out = append(out, string(e.Kind)+" "+e.Policy+strings.Join(e.Policies, ","))
		}
		return out
	}
	require.ElementsMatch(t, []string{"failed p1", "overdue p3", "overdue p1", "lease_expired p1,p2"}, seen(byName, 4))
	require.ElementsMatch(t, []string{"failed p2", "lease_expired p1,p2"}, seen(byTag, 2))
	require.ElementsMatch(t, []string{"overdue p3", "overdue p1"}, seen(overdue, 2))
	// Every delivery queued is one of those: nothing else is on its way.
	var jobs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'swarmkey_notify'`).Scan(&jobs))
	require.Equal(t, 8, jobs)
}

// TestRetryAfterAServerError: a 500 is retried with backoff, and the same
// notification (same id, freshly signed) is delivered on the next attempt.
func TestRetryAfterAServerError(t *testing.T) {
	t.Parallel()
	pool := riverPool(t)
	hook := newReceiver(t, http.StatusInternalServerError)
	key := randomKey(t)
	n, reg := newNotifier(t, notify.Config{Sinks: []notify.Sink{webhook("oncall", hook.srv.URL, key)},
		Routes: []notify.Route{{Sinks: []string{"oncall"}}}}, io.Discard)
	client := startClient(t, pool, n)
	n.Enqueue(context.Background(), client, notify.Event{Kind: notify.Failed, Policy: "p"})

	got := hook.waitFor(t, 2)
	require.Len(t, got, 2)
	var ids []string
	for _, req := range got {
		require.NoError(t, notify.Verify(req.header.Get(notify.SignatureHeader), req.body, []byte(key), 0, time.Now()))
		ids = append(ids, req.header.Get("Swarmkey-Notification"))
	}
	require.Equal(t, ids[0], ids[1])
	require.Eventually(t, func() bool {
		return metric(t, reg, "swarmkey_notification_deliveries_total", map[string]string{"sink": "oncall", "result": "delivered"}) == 1
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, metric(t, reg, "swarmkey_notification_deliveries_total", map[string]string{"sink": "oncall", "result": "failed"}))
	require.Zero(t, metric(t, reg, "swarmkey_notifications_undelivered_total", nil))
}

// TestUndeliverableIsLoggedAndCounted: a receiver that is gone is tried
// MaxAttempts times and given up; one that refuses (404) is given up at
// once. Both are logged and counted, and the logs hold neither the Slack
// URL's token nor the key.
func TestUndeliverableIsLoggedAndCounted(t *testing.T) {
	t.Parallel()
	pool := riverPool(t)
	gone := newReceiver(t)
	gone.srv.Close()
	refusing := newReceiver(t, http.StatusNotFound)
	token, key := randomKey(t), randomKey(t)
	var logs rotationtest.LogBuffer
	n, reg := newNotifier(t, notify.Config{
		Sinks:       []notify.Sink{slack("gone", gone.srv.URL+"/services/"+token), webhook("refusing", refusing.srv.URL, key)},
		Routes:      []notify.Route{{Sinks: []string{"gone", "refusing"}}},
		MaxAttempts: 3,
	}, &logs)
	client := startClient(t, pool, n)
	n.Enqueue(context.Background(), client, notify.Event{Kind: notify.NeedsAttention, Policy: "p"})

	require.Eventually(t, func() bool {
		return metric(t, reg, "swarmkey_notifications_undelivered_total", map[string]string{"sink": "gone", "reason": "attempts_exhausted"}) == 1 &&
			metric(t, reg, "swarmkey_notifications_undelivered_total", map[string]string{"sink": "refusing", "reason": "refused"}) == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 3.0, metric(t, reg, "swarmkey_notification_deliveries_total", map[string]string{"sink": "gone", "result": "failed"}))
	require.Len(t, refusing.requests(), 1, "a refusal is not retried")
	out := logs.String()
	require.Contains(t, out, `msg="notification not delivered; giving up" sink=gone`)
	require.Contains(t, out, `msg="notification not delivered: the receiver refused it; giving up" sink=refusing`)
	require.NotContains(t, out, token)
	require.NotContains(t, out, key)
}

// TestEnqueueFailureIsLoggedAndCounted: when the jobs cannot be inserted
// (the database is gone) Enqueue returns all the same, logs and counts.
func TestEnqueueFailureIsLoggedAndCounted(t *testing.T) {
	t.Parallel()
	pool := riverPool(t)
	var logs rotationtest.LogBuffer
	n, reg := newNotifier(t, notify.Config{Sinks: []notify.Sink{webhook("oncall", "http://127.0.0.1:1", "k")},
		Routes: []notify.Route{{Sinks: []string{"oncall"}}}}, &logs)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	pool.Close()
	n.Enqueue(context.Background(), client, notify.Event{Kind: notify.Failed, Policy: "p"})
	require.Equal(t, 1.0, metric(t, reg, "swarmkey_notifications_undelivered_total", map[string]string{"sink": "oncall", "reason": "enqueue_failed"}))
	require.Contains(t, logs.String(), `msg="notification not queued"`)
}

// TestDeliverySurvivesARestart: a delivery whose first attempt failed is
// still delivered, as the same notification, by a new notifier and River
// client after the first is stopped: its state is in PostgreSQL.
func TestDeliverySurvivesARestart(t *testing.T) {
	t.Parallel()
	pool := riverPool(t)
	hook := newReceiver(t, http.StatusServiceUnavailable)
	key := randomKey(t)
	cfg := notify.Config{Sinks: []notify.Sink{webhook("oncall", hook.srv.URL, key)}, Routes: []notify.Route{{Sinks: []string{"oncall"}}},
		// The retry comes after the first client is stopped.
		RetryBase: 2 * time.Second, RetryCap: 2 * time.Second}
	first, _ := newNotifier(t, cfg, io.Discard)
	client := startClient(t, pool, first)
	first.Enqueue(context.Background(), client, notify.Event{Kind: notify.Overdue, Policy: "p"})
	hook.waitFor(t, 1)
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	require.NoError(t, client.Stop(stopCtx))
	cancel()

	second, reg := newNotifier(t, cfg, io.Discard)
	startClient(t, pool, second)
	got := hook.waitFor(t, 2)
	require.Equal(t, got[0].header.Get("Swarmkey-Notification"), got[1].header.Get("Swarmkey-Notification"))
	require.NoError(t, notify.Verify(got[1].header.Get(notify.SignatureHeader), got[1].body, []byte(key), 0, time.Now()))
	require.Eventually(t, func() bool {
		return metric(t, reg, "swarmkey_notification_deliveries_total", map[string]string{"sink": "oncall", "result": "delivered"}) == 1
	}, 10*time.Second, 20*time.Millisecond)
	var attempt int
	var state string
	require.Eventually(t, func() bool {
		err := pool.QueryRow(context.Background(), `SELECT attempt, state FROM river_job WHERE kind = 'swarmkey_notify'`).Scan(&attempt, &state)
		return err == nil && state == "completed"
	}, 10*time.Second, 20*time.Millisecond, "the job completes")
	require.Equal(t, 2, attempt, "the second client made the second attempt of the same job")
}
