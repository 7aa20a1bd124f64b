package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
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

// TestMakeInstall: `make install PREFIX=DIR` leaves a working swarmkey and
// swarmkey-exec in DIR/bin, where the README's commands call them.
func TestMakeInstall(t *testing.T) {
	prefix := t.TempDir()
	out, err := exec.Command("make", "-C", "..", "--no-print-directory", "install", "PREFIX="+prefix).CombinedOutput()
	require.NoError(t, err, "make install:\n%s", out)
	installed := filepath.Join(prefix, "bin", "swarmkey")
	info, err := os.Stat(installed)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), info.Mode().Perm())
	help, err := exec.Command(installed, "--help").CombinedOutput()
	require.NoError(t, err, "%s", help)
	require.Contains(t, string(help), "swarmkey rotates the credentials")
	small := filepath.Join(prefix, "bin", "swarmkey-exec")
	info, err = os.Stat(small)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), info.Mode().Perm())
	help, err = exec.Command(small, "--help").CombinedOutput()
	require.NoError(t, err, "%s", help)
	require.Contains(t, string(help), "swarmkey-exec reads the current credential of each --policy")
	readme := readFile(t, "../README.md")
	require.Contains(t, readme, "make install")
}
