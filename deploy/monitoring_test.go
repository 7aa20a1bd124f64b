package deploy_test

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPrometheusAlertRules checks deploy/prometheus/alerts.yaml with
// promtool (Debian's prometheus package): the rules parse, and
// alerts_test.yaml's cases hold (each alert fires on the series that should
// raise it, with its labels and text, and stays quiet on healthy ones).
// cmd/swarmkey's TestPrometheusScrapesServe checks that serve exports every
// metric the rules use.
func TestPrometheusAlertRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
		require.Contains(t, string(out), "SUCCESS")
	}
}
