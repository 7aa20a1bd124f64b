package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/bench/internal/headline"
)

func sampleResults() []commandResult {
	quiet := machineState{
		before: probe{load: loadAvg{0.21, 0.3, 0.3}},
		quiet:  true,
		after:  probe{load: loadAvg{1.85, 0.5, 0.4}},
	}
	busy := machineState{
		before: probe{load: loadAvg{2.3, 2, 2}, others: []usage{{"postgres", 0.41}, {"go", 0.12}, {"sh", 0.06}}},
		after:  probe{load: loadAvg{2.41, 2, 2}},
		busy:   true,
	}
	busyDuring := machineState{
		before:     probe{load: loadAvg{0.1, 0.1, 0.1}},
		quiet:      true,
		during:     []usage{{"python3", 0.25}},
		after:      probe{load: loadAvg{0.9, 0.2, 0.1}},
		busyDuring: true,
		busy:       true,
	}
	return []commandResult{
		{
			cmd: planCommand{command: "go run ./bench/rotationbench -rounds $BENCH_ROUNDS"},
			figures: []headline.Figure{
				{Name: "rotations/s, concurrency 1", Aim: "ratio ≥ 0.85", Measured: "163.3/s vs 150.1/s", Ratio: 0.919, Pass: true},
				{Name: "rotations/s | concurrency 4", Aim: "ratio ≥ 0.85", Measured: "256.7/s vs 167.8/s", Ratio: 0.654},
			},
			state: quiet,
		},
		{cmd: planCommand{command: "go run ./bench/scanbench"}, figures: []headline.Figure{{Name: "scan / grep", Aim: "—", Measured: "2.23 s vs 60 ms", Ratio: 37.2, Pass: true}}, state: busy},
		{cmd: planCommand{command: "go run ./bench/execbench"}, err: errors.New("exit status 1"), state: busyDuring},
		{cmd: planCommand{command: "go test -bench . ./schedule/"}, state: quiet},
	}
}

func TestTextTable(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, writeText(&out, sampleResults()))
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	require.Len(t, lines, 6)
	require.Regexp(t, `^figure +aim +measured +ratio +result +machine$`, lines[0])
	require.Regexp(t, `^rotations/s, concurrency 1 +ratio ≥ 0\.85 +163\.3/s vs 150\.1/s +0\.92 +pass +quiet · load 0\.21→1\.85$`, lines[1])
	require.Regexp(t, ` 0\.65 +MISS +quiet · load 0\.21→1\.85$`, lines[2])
	require.Regexp(t, `^scan / grep +— +2\.23 s vs 60 ms +37\.20 +pass +BUSY · load 2\.30→2\.41 · postgres 41 %, go 12 %$`, lines[3])
	require.Regexp(t, `^command failed \(exit status 1\): go run ./bench/execbench +— +— +— +FAILED +BUSY · load 0\.10→0\.90 · during: python3 25 %$`, lines[4])
	require.Regexp(t, `^no figure from: go test -bench \. ./schedule/ +— +— +— +none +quiet · `, lines[5])
	// The columns line up (in characters: tabwriter counts code points).
	column := func(line, cell string) int {
		i := strings.Index(line, cell)
		require.GreaterOrEqual(t, i, 0, "%q in %q", cell, line)
		return utf8.RuneCountInString(line[:i])
	}
	machine, result := column(lines[0], "machine"), column(lines[0], "result")
	for i, cells := range [][2]string{{"pass", "quiet"}, {"MISS", "quiet"}, {"pass", "BUSY"}, {"FAILED", "BUSY"}, {"none", "quiet"}} {
		require.Equal(t, result, column(lines[i+1], cells[0]), lines[i+1])
		require.Equal(t, machine, column(lines[i+1], cells[1]), lines[i+1])
	}
}

func TestMarkdownTable(t *testing.T) {
	results := sampleResults()
	rep := report{
		date:    time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC),
		machine: machineInfo{cpus: 2, model: "Intel(R) Xeon(R) Processor", kernel: "6.1.0"},
		rule:    quietRule{maxLoad: 0.4, maxShare: 0.05, wait: 4 * time.Minute},
		env: usedEnv(results, func(name string) (string, bool) {
			return map[string]string{"BENCH_ROUNDS": "5"}[name], name == "BENCH_ROUNDS"
		}),
	}
	var out bytes.Buffer
	require.NoError(t, writeMarkdown(&out, rep, results))
	require.Equal(t, "Measured 2026-11-30 with `make bench` on 2 × Intel(R) Xeon(R) Processor, Linux 6.1.0.\n"+
		"Before each program, benchrun waited up to 4m0s for a quiet machine (1-minute load average under 0.4, no other process above 5 % of a core);\n"+
		"a figure taken on a machine that was not quiet, before or during its program, is marked BUSY.\n"+
		"\n"+
		"| figure | aim | measured | ratio | result | machine |\n"+
		"| --- | --- | --- | --- | --- | --- |\n"+
		"| rotations/s, concurrency 1 | ratio ≥ 0.85 | 163.3/s vs 150.1/s | 0.92 | pass | quiet · load 0.21→1.85 |\n"+
		"| rotations/s \\| concurrency 4 | ratio ≥ 0.85 | 256.7/s vs 167.8/s | 0.65 | MISS | quiet · load 0.21→1.85 |\n"+
		"| scan / grep | — | 2.23 s vs 60 ms | 37.20 | pass | BUSY · load 2.30→2.41 · postgres 41 %, go 12 % |\n"+
		"| command failed (exit status 1): go run ./bench/execbench | — | — | — | FAILED | BUSY · load 0.10→0.90 · during: python3 25 % |\n"+
		"| no figure from: go test -bench . ./schedule/ | — | — | — | none | quiet · load 0.21→1.85 |\n"+
		"\n"+
		"2 of the rows above were measured on a busy machine: not figures to quote.\n"+
		"\n"+
		"The commands, in order (with `BENCH_ROUNDS=5`):\n"+
		"\n"+
		"1. `go run ./bench/rotationbench -rounds $BENCH_ROUNDS`\n"+
		"2. `go run ./bench/scanbench`\n"+
		"3. `go run ./bench/execbench`\n"+
		"4. `go test -bench . ./schedule/`\n", out.String())
	require.Equal(t, "`` a `b` ``", inlineCode("a `b`"))
}
