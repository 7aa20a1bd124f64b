package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmkey/swarmkey/rotator"
)

// Metrics are the daemon's Prometheus metrics, on a registry of their own
// that serve also hands to the API's /metrics.
type Metrics struct {
	Registry       *prometheus.Registry
	rotations      *prometheus.CounterVec
	policies       prometheus.Gauge
	reloadFailures prometheus.Counter
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
