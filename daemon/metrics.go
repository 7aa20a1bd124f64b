package daemon

import (
	"context"
	"slices"
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
//
// A policy has a series of its own only while something is wrong with it
// (needs attention, overdue); the healthy ones are counted. With a series
// per policy and measure, a scrape of 100,000 policies took 1.4 s of
// serve's CPU and 10 MB of text, and a Prometheus scraping every 15 s kept
// an otherwise idle daemon at 10 % of a core (bench/daemonbench -mode idle
// -scrape-every 15s); what a scrape costs now grows with the policies'
// state rows, read once, not with series.
var (
	needsAttentionDesc = prometheus.NewDesc("swarmkey_policy_needs_attention",
		"1 while the policy's last rotation ended needs_attention (an operator must act); absent otherwise.", []string{"policy"}, nil)
	overdueDesc = prometheus.NewDesc("swarmkey_policy_overdue",
		"1 while the policy's credential is older than its max_age; absent otherwise.", []string{"policy"}, nil)
	needingAttentionDesc = prometheus.NewDesc("swarmkey_policies_needs_attention",
		"Configured policies whose last rotation ended needs_attention.", nil, nil)
	overdueCountDesc = prometheus.NewDesc("swarmkey_policies_overdue",
		"Configured policies whose credential is older than their max_age.", nil, nil)
	credentialAgeDesc = prometheus.NewDesc("swarmkey_credential_age_seconds",
		"How old the configured policies' current credentials are at this scrape, one observation per policy rotated at least once: a snapshot, to read without rate().", nil, nil)
	leaderDesc = prometheus.NewDesc("swarmkey_leader",
		"1 while this replica leads (plans the rotations), else 0.", nil, nil)
	stateUpDesc = prometheus.NewDesc("swarmkey_state_database_up",
		"1 when this scrape could read the state database, else 0 (and the policy and leader metrics are absent).", nil, nil)
)

// credentialAgeBuckets are the upper bounds of swarmkey_credential_age_seconds:
// an hour, six hours, a day, a week, 30, 90 and 365 days.
var credentialAgeBuckets = []float64{3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 90 * 86400, 365 * 86400}

// scrapeTimeout bounds the state reads of one scrape.
const scrapeTimeout = 5 * time.Second

// Watch adds what d knows to the metrics: the configured policies' state
// (which need attention or are overdue, their credentials' ages) and this
// replica's leadership, read from the state database at each scrape (so
// they hold across restarts and whichever replica rotated), and the
// scheduling lag of each rotation job d starts.
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
	for _, d := range []*prometheus.Desc{needsAttentionDesc, overdueDesc, needingAttentionDesc, overdueCountDesc, credentialAgeDesc,
		leaderDesc, stateUpDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	h, err := c.health(ctx)
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
	ch <- prometheus.MustNewConstMetric(needingAttentionDesc, prometheus.GaugeValue, float64(len(h.needsAttention)))
	ch <- prometheus.MustNewConstMetric(overdueCountDesc, prometheus.GaugeValue, float64(len(h.overdue)))
	for _, name := range h.needsAttention {
		ch <- prometheus.MustNewConstMetric(needsAttentionDesc, prometheus.GaugeValue, 1, name)
	}
	for _, name := range h.overdue {
		ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, 1, name)
	}
	ch <- prometheus.MustNewConstHistogram(credentialAgeDesc, h.rotated, h.ageSum, h.ageBuckets)
}

// policyHealth is what one scrape found in the state of the configured
// policies.
type policyHealth struct {
	needsAttention, overdue []string
	// rotated counts the policies rotated at least once; ageSum is their
	// credentials' ages in seconds, added; ageBuckets counts them by
	// credentialAgeBuckets, cumulatively.
	rotated    uint64
	ageSum     float64
	ageBuckets map[float64]uint64
}

// health reads the state of every policy once and keeps what the metrics
// need of the configured ones (a row of a policy since removed from the
// config is skipped).
func (c *stateCollector) health(ctx context.Context) (policyHealth, error) {
	h := policyHealth{ageBuckets: make(map[float64]uint64, len(credentialAgeBuckets))}
	for _, b := range credentialAgeBuckets {
		h.ageBuckets[b] = 0
	}
	policies := c.d.policies.Load().Policies
	now := c.d.cfg.Now()
	err := c.d.db.EachPolicyHealth(ctx, func(ph state.PolicyHealth) {
		p, ok := policies[ph.Policy]
		if !ok {
			return
		}
		if ph.NeedsAttention {
			h.needsAttention = append(h.needsAttention, ph.Policy)
		}
		if ph.RotatedAt == nil {
			// As the planner judges it: a credential never rotated is not
			// overdue (its age is unknown).
			return
		}
		age := now.Sub(*ph.RotatedAt)
		if p.Plan.MaxAge > 0 && age > p.Plan.MaxAge {
			h.overdue = append(h.overdue, ph.Policy)
		}
		seconds := max(age.Seconds(), 0)
		h.rotated++
		h.ageSum += seconds
		for _, b := range credentialAgeBuckets {
			if seconds <= b {
				h.ageBuckets[b]++
			}
		}
	})
	slices.Sort(h.needsAttention)
	slices.Sort(h.overdue)
	return h, err
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
