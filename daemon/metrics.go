package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/state"
)

// Metrics are the daemon's Prometheus metrics, on a registry of their own
// that serve also hands to the API's /metrics.
type Metrics struct {
	Registry       *prometheus.Registry
	rotations      *prometheus.CounterVec
	policies       prometheus.Gauge
	reloadFailures prometheus.Counter
	startLag       prometheus.Histogram
}

// NewMetrics registers the daemon's metrics for a set of policies.
func NewMetrics(policies int) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmkey_rotations_total", Help: "Rotation jobs run, by outcome.",
		}, []string{"outcome"}),
		policies:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "swarmkey_policies", Help: "Configured policies."}),
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "swarmkey_reload_failures_total", Help: "SIGHUP reloads that kept the old policies."}),
	}
	m.Registry.MustRegister(m.rotations, m.policies, m.reloadFailures)
	// Every outcome is exported from the start, at zero: increase() and
	// rate() then see a first failure, which a series born at 1 would hide.
	for _, o := range []string{string(state.OutcomeSucceeded), string(state.OutcomeFailed), string(state.OutcomeNeedsAttention), "deferred"} {
		m.rotations.WithLabelValues(o)
	}
	m.policies.Set(float64(policies))
	return m
}

// Observe counts one rotation job by its outcome; it fits Daemon.OnResult.
func (m *Metrics) Observe(_ RotateArgs, res rotator.Result, err error) {
	outcome := string(res.Outcome)
	if outcome == "" {
		outcome = "deferred"
		if err == nil {
			outcome = "succeeded"
		}
	}
	m.rotations.WithLabelValues(outcome).Inc()
}

// Reloaded records a reload: the new number of policies, or a failure.
func (m *Metrics) Reloaded(policies int, ok bool) {
	if !ok {
		m.reloadFailures.Inc()
		return
	}
	m.policies.Set(float64(policies))
}

// Policy and replica state read at each scrape (see Watch). Each replica
// reports the same policy state, read from the shared database, so alert
// rules aggregate it with max by (policy); swarmkey_leader is the replica's
// own and is summed. Labels are policy names only, never a value.
var (
	needsAttentionDesc = prometheus.NewDesc("swarmkey_policy_needs_attention",
		"1 when the policy's last rotation ended needs_attention (an operator must act), else 0.", []string{"policy"}, nil)
	overdueDesc = prometheus.NewDesc("swarmkey_policy_overdue",
		"1 when the policy's credential is older than its max_age, else 0.", []string{"policy"}, nil)
	lastRotationDesc = prometheus.NewDesc("swarmkey_policy_last_rotation_timestamp_seconds",
		"When the policy's credential was last rotated (Unix time); absent before the first rotation.", []string{"policy"}, nil)
	leaderDesc = prometheus.NewDesc("swarmkey_leader",
		"1 while this replica leads (plans the rotations), else 0.", nil, nil)
	stateUpDesc = prometheus.NewDesc("swarmkey_state_database_up",
		"1 when this scrape could read the state database, else 0 (and the policy and leader metrics are absent).", nil, nil)
)

// scrapeTimeout bounds the state reads of one scrape.
const scrapeTimeout = 5 * time.Second

// Watch adds what d knows to the metrics: the state of each configured
// policy and this replica's leadership, read from the state database at
// each scrape (so they hold across restarts and whichever replica rotated),
// and the scheduling lag of each rotation job d starts.
func (m *Metrics) Watch(d *Daemon) {
	m.startLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "swarmkey_rotation_start_lag_seconds",
		Help: "How late a rotation job starts after its slot, on its first run (a job a run held back is not counted again).",
		// From a planning tick's worth to the ten minutes of a stuck queue.
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	})
	m.Registry.MustRegister(m.startLag, &stateCollector{d: d})
	d.OnStart = func(_ RotateArgs, lag time.Duration) { m.startLag.Observe(max(lag, 0).Seconds()) }
}

// stateCollector reads the policy state and the River leader at scrape time.
type stateCollector struct{ d *Daemon }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{needsAttentionDesc, overdueDesc, lastRotationDesc, leaderDesc, stateUpDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	states, err := c.d.db.PolicyStates(ctx)
	var leads bool
	if err == nil {
		err = c.d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_leader WHERE leader_id = $1 AND expires_at > now())`,
			c.d.river.ID()).Scan(&leads)
	}
	if err != nil {
		// A database that does not answer must not fail the whole scrape:
		// the process metrics and counters still tell the story.
		c.d.logger.Warn("metrics: the state database did not answer", "error", err)
		ch <- prometheus.MustNewConstMetric(stateUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(stateUpDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, boolValue(leads))
	now := c.d.cfg.Now()
	for name, p := range c.d.policies.Load().Policies {
		st := states[name]
		ch <- prometheus.MustNewConstMetric(needsAttentionDesc, prometheus.GaugeValue,
			boolValue(st.LastOutcome == string(state.OutcomeNeedsAttention)), name)
		// As the planner judges it: a credential never rotated is not
		// overdue (its age is unknown).
		overdue := p.Plan.MaxAge > 0 && st.RotatedAt != nil && now.Sub(*st.RotatedAt) > p.Plan.MaxAge
		ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, boolValue(overdue), name)
		if st.RotatedAt != nil {
			ch <- prometheus.MustNewConstMetric(lastRotationDesc, prometheus.GaugeValue,
				float64(st.RotatedAt.UnixNano())/1e9, name)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
