package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePlan(t *testing.T) {
	plan, err := parsePlan("bench/plan.txt", strings.NewReader(`# comment

scripts/with-postgres go run ./bench/rotationbench -rounds $BENCH_ROUNDS
go test -run '^$' -bench '^BenchmarkOverhead$' ./providers/aws/
	metric ratio < 1.1: store overhead (store/raw)
    metric ms/plan >= 2.5e1:  another
  # an indented comment
go run ./bench/scanbench
`))
	require.NoError(t, err)
	require.Equal(t, []planCommand{
		{where: "bench/plan.txt:3", command: "scripts/with-postgres go run ./bench/rotationbench -rounds $BENCH_ROUNDS"},
		{where: "bench/plan.txt:4", command: `go test -run '^$' -bench '^BenchmarkOverhead$' ./providers/aws/`, metrics: []metricRule{
			{unit: "ratio", op: "<", limit: 1.1, aim: "< 1.1", name: "store overhead (store/raw)"},
			{unit: "ms/plan", op: "≥", limit: 25, aim: "≥ 2.5e1", name: "another"},
		}},
		{where: "bench/plan.txt:8", command: "go run ./bench/scanbench"},
	}, plan)
}

func TestParsePlanErrors(t *testing.T) {
	for text, want := range map[string]string{
		"":                                  "p.txt: no commands",
		"# only a comment\n":                "p.txt: no commands",
		"\tmetric ratio < 1.1: x\ntrue\n":   "p.txt:1: a metric rule before any command",
		"true\n\tratio < 1.1\n":             "p.txt:2: an indented line is a metric rule of the command above: want `metric UNIT OP LIMIT: FIGURE NAME`",
		"true\n\tmetric ratio = 1.1: x\n":   "p.txt:2: an indented line",
		"true\n\tmetric ratio < 1.1\n":      "p.txt:2: an indented line",
		"true\n\tmetric ratio < 1.1.2: x\n": `p.txt:2: limit "1.1.2" is not a number`,
	} {
		_, err := parsePlan("p.txt", strings.NewReader(text))
		require.ErrorContains(t, err, want, "%q", text)
	}
}

// TestRepositoryPlanParses reads the plan `make bench` runs.
func TestRepositoryPlanParses(t *testing.T) {
	plan, err := loadPlan("../plan.txt", nil)
	require.NoError(t, err)
	require.NotEmpty(t, plan)
}
