package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/bench/internal/headline"
)

func TestCollectorGathersFigures(t *testing.T) {
	output := strings.Join([]string{
		"rounds: 3",
		figureLine,
		// go test prints a benchmark's name before running it, so a
		// headline the benchmark prints follows the name.
		"BenchmarkPlanAll-2   \t" + `HEADLINE {"figure":"full plan, 10,000 policies","aim":"< 500 ms","measured":"45 ms","pass":true}`,
		"HEADLINE not json",
		"goos: linux",
		"pkg: github.com/swarmkey/swarmkey/schedule",
		"BenchmarkPlanAll-2   \t      20\t  45123456 ns/op\t  45.1 ms/plan\t   1234 B/op",
		"BenchmarkPlan/one-policy-4   \t      20\t  1500 ns/op\t  612 ms/plan",
		"--- BENCH: BenchmarkPlanAll-2",
		"    plan_test.go:40: 45.1 ms/plan",
		"pkg: example.org/other/pkg",
		"BenchmarkX\t1\t0.5 ms/plan",
	}, "\n")
	var through bytes.Buffer
	c := &figureCollector{out: &through, rules: []metricRule{{unit: "ms/plan", op: "≤", limit: 500, aim: "≤ 500", name: "full plan"}}}
	// Written in pieces that split lines, as a pipe delivers them; the last
	// line has no newline.
	for i := 0; i < len(output); i += 7 {
		_, err := c.Write([]byte(output[i:min(i+7, len(output))]))
		require.NoError(t, err)
	}
	c.finish()
	require.Equal(t, output, through.String(), "the output is passed through unchanged")
	require.Equal(t, []headline.Figure{
		{Name: "rotations/s, concurrency 1", Aim: "ratio ≥ 0.85", Measured: "163.3/s vs 150.1/s", Ratio: 0.92, Pass: true},
		{Name: "full plan, 10,000 policies", Aim: "< 500 ms", Measured: "45 ms", Pass: true},
		{Name: "full plan: schedule PlanAll", Aim: "≤ 500", Measured: "45.1 ms/plan", Pass: true},
		{Name: "full plan: schedule Plan/one-policy", Aim: "≤ 500", Measured: "612 ms/plan", Pass: false},
		{Name: "full plan: example.org/other/pkg X", Aim: "≤ 500", Measured: "0.5 ms/plan", Pass: true},
	}, c.figures)
}

func TestMetricRuleAims(t *testing.T) {
	for _, c := range []struct {
		op   string
		v    float64
		want bool
	}{
		{"<", 1.09, true}, {"<", 1.1, false},
		{"≤", 1.1, true}, {"≤", 1.11, false},
		{">", 1.11, true}, {">", 1.1, false},
		{"≥", 1.1, true}, {"≥", 1.09, false},
	} {
		require.Equal(t, c.want, metricRule{op: c.op, limit: 1.1}.meets(c.v), "%v %s 1.1", c.v, c.op)
	}
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{1.0234: "1.02", 45.12: "45.1", 0.000123: "0.000123", 812345.6: "812346", 2: "2"} {
		require.Equal(t, want, formatNumber(v))
	}
}
