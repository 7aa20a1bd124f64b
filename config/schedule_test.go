package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// policyText is decodeHead with one generated-target policy per entry of
// policies, named a, b, c…; each entry holds the policy's further lines
// (schedule, window…).
func policyText(policies ...[]string) string {
	text := decodeHead
	for i, lines := range policies {
		name := string(rune('a' + i))
		text += "  - name: " + name + "\n    target: { generated: {} }\n"
		for _, l := range lines {
			text += "    " + l + "\n"
		}
	}
	return text
}

// TestScheduleLimits: schedules and windows that the daemon cannot honour as
// written are refused, each with what to write instead.
func TestScheduleLimits(t *testing.T) {
	_, err := loadText(t, policyText(
		[]string{`schedule: "@every 0s"`},
		[]string{`schedule: "@every -5s"`},
		[]string{`schedule: "@every 500ms"`},
		[]string{`schedule: "@every 1500ms"`, "window: 1s"},
		[]string{`schedule: "@every 1s"`},
		[]string{`schedule: "@every 1s"`, "window: 500ms"},
		[]string{`schedule: "@every 10s"`, "window: 500ms"},
		[]string{`schedule: "@every 10s"`, "window: 999ms"},
		[]string{`schedule: "*/30 * * * *"`},
		[]string{`schedule: "@every 40m"`, "window: 1h"},
	))
	es := requireErrors(t, err,
		"p.yaml:7: policies[a].schedule: @every 0s: the period must be at least 1s",
		"p.yaml:10: policies[b].schedule: @every -5s: the period must be at least 1s",
		"p.yaml:13: policies[c].schedule: @every 500ms: the period must be at least 1s (fires are counted in whole seconds)",
		"p.yaml:16: policies[d].schedule: @every 1500ms: the period must be a whole number of seconds, such as 1s or 2s",
		"p.yaml:20: policies[e].schedule: fires every 1s, too often for any window: a window is at least 1s and shorter than the period; fire at most every 2s",
		"p.yaml:23: policies[f].schedule: fires every 1s, too often for any window",
		"p.yaml:24: policies[f].window: window 500ms is shorter than the minimum 1s: a rotation may start up to about a second after its fire is planned, so most fires would be missed; give at least 1s",
		"p.yaml:28: policies[g].window: window 500ms is shorter than the minimum 1s",
		"p.yaml:32: policies[h].window: window 999ms is shorter than the minimum 1s",
		"p.yaml:33: policies[i].window: not set, so the default of 1h applies, which is not shorter than the schedule's period 30m; add window: shorter than the period to this policy, such as window: 15m",
		"p.yaml:39: policies[j].window: window 1h is not shorter than the schedule's period 40m",
	)
	// The message about the default window does not quote it as if the
	// file gave it.
	require.NotContains(t, es[9].Msg, "window 1h")
}

// TestShortSchedulesThatWork: the shortest windows and periods the rules
// allow load, among them those of the command's daemon tests.
func TestShortSchedulesThatWork(t *testing.T) {
	cfg, err := loadText(t, policyText(
		[]string{`schedule: "@every 2s"`, "window: 1900ms"},
		[]string{`schedule: "@every 2s"`, "window: 1s"},
		[]string{`schedule: "@every 3s"`, "window: 2s"},
		[]string{`schedule: "@every 5s"`, "window: 4900ms"},
		[]string{`schedule: "@every 10s"`, "window: 9900ms"},
		[]string{`schedule: "*/30 * * * *"`, "window: 15m"},
		[]string{`schedule: "@every 1h0m1s"`},
	))
	require.NoError(t, err)
	var got []time.Duration
	for _, p := range cfg.Policies {
		got = append(got, p.Window)
	}
	require.Equal(t, []time.Duration{1900 * time.Millisecond, time.Second, 2 * time.Second, 4900 * time.Millisecond,
		9900 * time.Millisecond, 15 * time.Minute, DefaultWindow}, got)
}
