package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	yaml "go.yaml.in/yaml/v3"
)

// The monitoring files under deploy/, which this test checks against a real
// scrape of a real serve.
const (
	alertsFile    = "../../deploy/prometheus/alerts.yaml"
	dashboardFile = "../../deploy/grafana/swarmkey.json"
)

// TestPrometheusScrapesServe runs a real serve with --http-listen, rotates
// through it, and checks what it exports: `promtool check metrics` finds no
// problem in the scrape; every metric deploy/prometheus/alerts.yaml and
// deploy/grafana/swarmkey.json use is in it; no label holds the secret;
// and a real Prometheus, loading alerts.yaml, scrapes it and answers
// queries over swarmkey's metrics.
func TestPrometheusScrapesServe(t *testing.T) {
	t.Parallel()
	prometheusBin := requireTool(t, "prometheus")
	promtool := requireTool(t, "promtool")
	alerts, err := filepath.Abs(alertsFile)
	require.NoError(t, err)

	c := newCLI(t, "single", "")
	policyFile, err := os.ReadFile(c.config)
	require.NoError(t, err)
	c.write(c.config, strings.Replace(string(policyFile), "    canary:", "    max_age: 720h\n    canary:", 1))
	metricsAddr := freeLoopbackAddr(t)
	c.serve(t, "--http-listen", metricsAddr)
	r := c.run("rotate", "checkout-db", "--wait")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	current, ok := c.stage("current")
	require.True(t, ok)

	scrape := httpGet(t, "http://"+metricsAddr+"/metrics")
	lint := exec.Command(promtool, "check", "metrics")
	lint.Stdin = strings.NewReader(scrape)
	out, err := lint.CombinedOutput()
	require.NoError(t, err, "promtool check metrics on serve's /metrics:\n%s", out)

	// The families a rotation through the daemon fills in, by sample. A
	// healthy policy has no series of its own: it is counted.
	for _, sample := range []string{
		`swarmkey_policies_needs_attention 0`,
		`swarmkey_policies_overdue 0`,
		`swarmkey_credential_age_seconds_bucket{le="3600"} 1`,
		`swarmkey_credential_age_seconds_count 1`,
		`swarmkey_leader 1`,
		`swarmkey_state_database_up 1`,
		`swarmkey_rotation_start_lag_seconds_count 1`,
		`swarmkey_rotations_total{outcome="succeeded"} 1`,
		`swarmkey_rotations_total{outcome="failed"} 0`,
	} {
		require.Contains(t, scrape, sample)
	}
	require.NotContains(t, scrape, current.Password)
	require.NotContains(t, scrape, `swarmkey_policy_needs_attention{`)
	require.NotContains(t, scrape, `swarmkey_policy_overdue{`)

	// The policy in trouble: its last rotation needs attention, and its
	// credential is 40 days old against a max_age of 30. It now has a
	// series of each, which the alert rules read.
	_, err = c.db.Pool.Exec(t.Context(), `UPDATE policy_state SET last_outcome = 'needs_attention', rotated_at = now() - interval '40 days'
		WHERE policy = 'checkout-db'`)
	require.NoError(t, err)
	troubled := httpGet(t, "http://"+metricsAddr+"/metrics")
	for _, sample := range []string{
		`swarmkey_policy_needs_attention{policy="checkout-db"} 1`,
		`swarmkey_policy_overdue{policy="checkout-db"} 1`,
		`swarmkey_policies_needs_attention 1`,
		`swarmkey_policies_overdue 1`,
		`swarmkey_credential_age_seconds_bucket{le="2.592e+06"} 0`,
		`swarmkey_credential_age_seconds_bucket{le="7.776e+06"} 1`,
	} {
		require.Contains(t, troubled, sample)
	}
	lint = exec.Command(promtool, "check", "metrics")
	lint.Stdin = strings.NewReader(troubled)
	out, err = lint.CombinedOutput()
	require.NoError(t, err, "promtool check metrics on serve's /metrics, a policy in trouble:\n%s", out)

	exported := append(metricFamilies(scrape), metricFamilies(troubled)...)
	used := map[string][]string{}
	for _, expr := range alertExprs(t) {
		used[alertsFile] = append(used[alertsFile], metricNames(expr)...)
	}
	for _, expr := range dashboardExprs(t) {
		used[dashboardFile] = append(used[dashboardFile], metricNames(expr)...)
	}
	for file, names := range used {
		require.NotEmpty(t, names, file)
		for _, name := range names {
			require.Contains(t, exported, name, "%s uses %s, which serve does not export", file, name)
		}
	}

	// A real Prometheus scrapes serve, with the alert rules loaded.
	dir := t.TempDir()
	promAddr := freeLoopbackAddr(t)
	config := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: swarmkey
    static_configs:
      - targets: [%q]
`, alerts, metricsAddr), 0o600))
	prom := exec.Command(prometheusBin, "--config.file="+config, "--web.listen-address="+promAddr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--log.level=warn")
	var promLog bytes.Buffer
	prom.Stdout, prom.Stderr = &promLog, &promLog
	require.NoError(t, prom.Start())
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
	})

	api := "http://" + promAddr + "/api/v1/"
	for _, query := range []string{
		`swarmkey_policies{job="swarmkey"} == 1`,
		`max by (policy) (swarmkey_policy_needs_attention{policy="checkout-db"}) == 1`,
		`swarmkey_policies_overdue == 1`,
		`ALERTS{alertname="SwarmkeyNeedsAttention", policy="checkout-db", alertstate="firing"}`,
		`sum(swarmkey_leader) == 1`,
		`swarmkey_rotations_total{outcome="succeeded"} == 1`,
	} {
		require.Eventually(t, func() bool {
			var res struct {
				Status string
				Data   struct{ Result []json.RawMessage }
			}
			body, err := tryGet(api + "query?query=" + url.QueryEscape(query))
			return err == nil && json.Unmarshal([]byte(body), &res) == nil && res.Status == "success" && len(res.Data.Result) == 1
		}, 60*time.Second, 500*time.Millisecond, "Prometheus answers %s\n%s", query, &promLog)
	}
	// Every dashboard query is PromQL this Prometheus runs, with Grafana's
	// variables given values.
	grafanaVars := strings.NewReplacer("$job", "swarmkey", "$__rate_interval", "1m")
	for _, expr := range dashboardExprs(t) {
		if strings.HasPrefix(expr, "label_values(") {
			continue // Grafana's own function, not PromQL
		}
		body, err := tryGet(api + "query?query=" + url.QueryEscape(grafanaVars.Replace(expr)))
		require.NoError(t, err, "the dashboard's query %s", expr)
		require.Contains(t, body, `"status":"success"`, expr)
	}

	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct{ Name, Health, LastError string }
			}
		}
	}
	require.Eventually(t, func() bool {
		body, err := tryGet(api + "rules")
		if err != nil || json.Unmarshal([]byte(body), &rules) != nil || len(rules.Data.Groups) != 1 {
			return false
		}
		for _, rule := range rules.Data.Groups[0].Rules {
			if rule.Health != "ok" {
				return false
			}
		}
		return true
	}, 60*time.Second, 500*time.Millisecond, "every alert rule evaluates: %+v", rules)
	require.Len(t, rules.Data.Groups[0].Rules, len(alertExprs(t)))
	c.requireNoLeak(current.Password)
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	require.NoError(t, err, "%s is missing: install Debian's prometheus package (scripts/test-deps does)", name)
	return path
}

// freeLoopbackAddr is a loopback port free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func tryGet(u string) (string, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(body), err
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	body, err := tryGet(u)
	require.NoError(t, err)
	return body
}

// metricFamilies are the names in a scrape's # TYPE lines, with each
// histogram's _bucket, _sum and _count series.
func metricFamilies(scrape string) []string {
	var names []string
	for line := range strings.Lines(scrape) {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names = append(names, f[2])
			if f[3] == "histogram" {
				names = append(names, f[2]+"_bucket", f[2]+"_sum", f[2]+"_count")
			}
		}
	}
	return names
}

var swarmkeyMetric = regexp.MustCompile(`\bswarmkey_[a-z0-9_]+`)

func metricNames(expr string) []string {
	names := swarmkeyMetric.FindAllString(expr, -1)
	slices.Sort(names)
	return slices.Compact(names)
}

func alertExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(alertsFile)
	require.NoError(t, err)
	var file struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	require.NoError(t, yaml.Unmarshal(data, &file), alertsFile)
	var exprs []string
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// dashboardExprs are the queries of every panel and templating variable of
// the Grafana dashboard, which must be JSON.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Type, Query string }
		}
	}
	require.NoError(t, json.Unmarshal(data, &dash), dashboardFile)
	var exprs []string
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, target := range p.Targets {
			require.NotEmpty(t, target.Expr, "panel %q", p.Title)
			exprs = append(exprs, target.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type == "query" {
			exprs = append(exprs, v.Query)
		}
	}
	return exprs
}
