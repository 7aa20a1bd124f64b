package notify

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/swarmkey/swarmkey/secret"
)

// SinkKind is how a sink is spoken to.
type SinkKind string

// The kinds of sinks.
const (
	// Webhook: the Event as JSON, signed with HMAC-SHA256 (SignatureHeader).
	Webhook SinkKind = "webhook"
	// Slack: a Slack-compatible incoming-webhook message (SlackBody).
	Slack SinkKind = "slack"
)

// Defaults of Config.
const (
	DefaultMaxAttempts = 10
	DefaultRetryBase   = 10 * time.Second
	DefaultRetryCap    = 30 * time.Minute
	DefaultTimeout     = 10 * time.Second
)

// Sink is one receiver of notifications.
type Sink struct {
	Name string
	Kind SinkKind
	// URL is where a webhook sink posts; empty for a Slack sink, whose URL
	// is its credential.
	URL string
	// Credential resolves the webhook's HMAC key, or the Slack sink's URL
	// (which holds Slack's token). It is called for each attempt, so a
	// rotated key or URL is used from the next attempt on; its errors name
	// the reference, never a value.
	Credential func(ctx context.Context) (secret.Secret, error)
}

// Route sends the events of some policies to some sinks.
type Route struct {
	// Policies and Tags select the policies: an event matches when its
	// policy (for a lease, one of its policies) is named here or has one of
	// the tags. Both empty: every policy.
	Policies []string
	Tags     []string
	// Kinds selects the events; empty: every kind.
	Kinds []Kind
	// Sinks are the names of the sinks that get them.
	Sinks []string
}

// Config is what notifications go where, and how hard delivery tries.
type Config struct {
	Sinks  []Sink
	Routes []Route
	// DeferralThreshold: a deferral is notified when it pushes the
	// rotation back by more than this (0: every deferral).
	DeferralThreshold time.Duration
	// MaxAttempts is how often a delivery is tried before it is given up;
	// default 10.
	MaxAttempts int
	// RetryBase and RetryCap bound the exponential backoff between
	// attempts (base·2^(attempt−1), capped); defaults 10s and 30m, so ten
	// attempts span about 70 minutes.
	RetryBase, RetryCap time.Duration
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryCap <= 0 {
		c.RetryCap = DefaultRetryCap
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

func (c *Config) sink(name string) (Sink, bool) {
	for _, s := range c.Sinks {
		if s.Name == name {
			return s, true
		}
	}
	return Sink{}, false
}

// SinksFor returns the names of the sinks that get e, each once, in route
// order.
func (c *Config) SinksFor(e Event) []string {
	var out []string
	for _, r := range c.Routes {
		if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, e.Kind) {
			continue
		}
		if !r.matches(e) {
			continue
		}
		for _, s := range r.Sinks {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func (r Route) matches(e Event) bool {
	if len(r.Policies) == 0 && len(r.Tags) == 0 {
		return true
	}
	for _, p := range e.policies() {
		if slices.Contains(r.Policies, p) {
			return true
		}
	}
	for _, t := range e.Tags {
		if slices.Contains(r.Tags, t) {
			return true
		}
	}
	return false
}

// Inserter inserts River jobs: a *river.Client does.
type Inserter interface {
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Notifier routes events to sinks and delivers them. Its configuration is
// swapped whole on reload; a delivery uses the sink as configured when it
// is attempted.
type Notifier struct {
	cfg    atomic.Pointer[Config]
	logger *slog.Logger
	client *http.Client
	// now is the clock of event times and signatures.
	now func() time.Time

	enqueued    *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	undelivered *prometheus.CounterVec
}

// New returns a Notifier of cfg; logger nil discards its logs.
func New(cfg Config, logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{
		logger: logger,
		now:    func() time.Time { return time.Now().UTC() },
		client: &http.Client{
			// A redirect is answered as it stands (a failure): following
			// it would post the signed body somewhere nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmkey_notifications_enqueued_total", Help: "Notifications queued for delivery, by sink and event.",
		}, []string{"sink", "event"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmkey_notification_deliveries_total", Help: "Notification delivery attempts, by sink and result (delivered, failed).",
		}, []string{"sink", "result"}),
		undelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmkey_notifications_undelivered_total",
			Help: "Notifications given up, by sink and reason (attempts_exhausted, refused, sink_removed, enqueue_failed).",
		}, []string{"sink", "reason"}),
	}
	n.Reload(cfg)
	return n
}

// Reload swaps the configuration; deliveries already queued use the new
// one from their next attempt (a sink no longer configured drops them).
func (n *Notifier) Reload(cfg Config) {
	c := cfg.withDefaults()
	n.cfg.Store(&c)
}

// Config returns the configuration in use.
func (n *Notifier) Config() Config { return *n.cfg.Load() }

// Register adds the notifier's metrics to reg.
func (n *Notifier) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{n.enqueued, n.deliveries, n.undelivered} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// enqueueTimeout bounds the insert of an event's delivery jobs: the caller
// is a rotation or the planner, which must not wait on notifications.
const enqueueTimeout = 5 * time.Second

// Enqueue queues e for every sink its routes name, as one River job each.
// It sets e.ID and, when zero, e.At. It never fails its caller: an insert
// that fails is logged and counted (undelivered, reason enqueue_failed).
func (n *Notifier) Enqueue(ctx context.Context, ins Inserter, e Event) {
	cfg := n.cfg.Load()
	sinks := cfg.SinksFor(e)
	if len(sinks) == 0 {
		return
	}
	e.ID = uuid.NewString()
	if e.At.IsZero() {
		e.At = n.now()
	}
	params := make([]river.InsertManyParams, 0, len(sinks))
	for _, s := range sinks {
		opts := DeliveryArgs{}.InsertOpts()
		opts.MaxAttempts = cfg.MaxAttempts
		params = append(params, river.InsertManyParams{Args: DeliveryArgs{Sink: s, Event: e}, InsertOpts: &opts})
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), enqueueTimeout)
	defer cancel()
	if _, err := ins.InsertMany(ctx, params); err != nil {
		for _, s := range sinks {
			n.undelivered.WithLabelValues(s, "enqueue_failed").Inc()
		}
		n.logger.Error("notification not queued", "event", string(e.Kind), "policy", e.Policy, "sinks", sinks, "notification", e.ID, "error", err)
		return
	}
	for _, s := range sinks {
		n.enqueued.WithLabelValues(s, string(e.Kind)).Inc()
	}
	n.logger.Info("notification queued", "event", string(e.Kind), "policy", e.Policy, "sinks", sinks, "notification", e.ID)
}
