package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/bench/internal/headline"
)

const figureLine = `HEADLINE {"figure":"rotations/s, concurrency 1","aim":"ratio ≥ 0.85","measured":"163.3/s vs 150.1/s","ratio":0.92,"pass":true}`

// TestQuietWaitMarksBusy runs a command while a CPU-bound process of the
// test runs outside benchrun's tree: the wait for quiet sees it, gives up
// after its (small) bound, runs the command anyway and marks its figure
// BUSY, naming the busy process; the sampling during the command sees it
// too.
func TestQuietWaitMarksBusy(t *testing.T) {
	startSpinner(t)
	sleeper := startSleeper(t)
	var stdout, log bytes.Buffer
	r := &runner{
		procDir: "/proc",
		self:    sleeper.Process.Pid, // so the spinner is another process
		// The load average is left out of this rule (the shared machine's
		// would make it busy anyway): only the spinner can.
		rule:   quietRule{maxLoad: 1e9, maxShare: 0.05, wait: time.Second, window: 500 * time.Millisecond},
		stdout: &stdout, stderr: &log, log: &log,
	}
	res, err := r.run("[1/1]", planCommand{where: "test", command: "echo '" + figureLine + "'; sleep 1.5"})
	require.NoError(t, err)
	require.NoError(t, res.err)
	require.Len(t, res.figures, 1)

	require.False(t, res.state.quiet, "the wait for quiet did not see the busy process")
	require.True(t, res.state.busy)
	share, counted := shareOf(res.state.before.others, spinnerName)
	require.True(t, counted, "the busy process is not among the others: %v", res.state.before.others)
	require.Greater(t, share, r.rule.maxShare)
	require.Contains(t, log.String(), "running anyway, its figures are marked BUSY")
	share, counted = shareOf(res.state.during, spinnerName)
	require.True(t, counted, "the busy process is not among the others during the command: %v", res.state.during)
	require.Greater(t, share, r.rule.maxShare)
	require.True(t, res.state.busyDuring)

	table := rows([]commandResult{res})
	require.Len(t, table, 1)
	require.Equal(t, "rotations/s, concurrency 1", table[0].figure)
	require.True(t, strings.HasPrefix(table[0].machine, "BUSY · load "), table[0].machine)
	require.Contains(t, stdout.String(), figureLine, "the command's output is passed through")
}

// TestRunGathersFiguresAndFailures runs commands on a rule that is always
// met: a headline, go test result lines read by a metric rule, a failed
// command and one without a figure.
func TestRunGathersFiguresAndFailures(t *testing.T) {
	var stdout, log bytes.Buffer
	r := &runner{
		procDir: "/proc",
		self:    os.Getpid(),
		rule:    quietRule{maxLoad: 1e9, maxShare: 1e9, wait: 0, window: 10 * time.Millisecond},
		stdout:  &stdout, stderr: &log, log: &log,
	}
	goTest := planCommand{
		command: `printf 'pkg: github.com/swarmkey/swarmkey/providers/aws\nBenchmarkOverhead/Get-2  1  812345 ns/op  1.02 ratio\nBenchmarkOverhead/Promote-2  1  9 ns/op  1.30 ratio\n'`,
		metrics: []metricRule{{unit: "ratio", op: "<", limit: 1.1, aim: "< 1.1", name: "store overhead"}},
	}
	var results []commandResult
	for _, c := range []planCommand{{command: "echo '" + figureLine + "'"}, goTest, {command: "echo partial; exit 3"}, {command: "echo no figure here"}} {
		res, err := r.run("[test]", c)
		require.NoError(t, err)
		require.False(t, res.state.busy)
		results = append(results, res)
	}
	require.NoError(t, results[0].err)
	require.Equal(t, []headline.Figure{
		{Name: "store overhead: providers/aws Overhead/Get", Aim: "< 1.1", Measured: "1.02", Ratio: 1.02, Pass: true},
		{Name: "store overhead: providers/aws Overhead/Promote", Aim: "< 1.1", Measured: "1.3", Ratio: 1.30, Pass: false},
	}, results[1].figures)
	require.ErrorContains(t, results[2].err, "exit status 3")
	require.NoError(t, results[3].err)

	table := rows(results)
	require.Len(t, table, 5)
	require.Equal(t, "pass", table[0].result)
	require.Equal(t, "MISS", table[2].result)
	require.Equal(t, row{"command failed (exit status 3): echo partial; exit 3", "—", "—", "—", "FAILED", table[3].machine}, table[3])
	require.Equal(t, row{"no figure from: echo no figure here", "—", "—", "—", "none", table[4].machine}, table[4])
	require.True(t, strings.HasPrefix(table[4].machine, "quiet · load "), table[4].machine)
}

// TestCLI runs benchrun itself (the test binary in cli mode) on a plan
// whose first command leaves a CPU-bound process running in the
// background, detached from its shell, as pg_ctl leaves PostgreSQL. That
// process must stay in benchrun's tree (benchrun is the subreaper), so it
// is never "other", and must be ended before the next command. The second
// command fails, the third prints no figure: benchrun exits 1 with a row
// for each, and writes the Markdown table.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "spinner.pid")
	plan := "# test plan\n" +
		"echo '" + figureLine + "'; (\"$SPINNER\" " + spinArg + " 60s >/dev/null 2>&1 & echo $! > \"$PIDFILE\")\n" +
		"exit 3\n" +
		"true\n"
	planFile := filepath.Join(dir, "plan.txt")
	require.NoError(t, os.WriteFile(planFile, []byte(plan), 0o644))
	markdown := filepath.Join(dir, "bench.md")

	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, "-plan", planFile, "-markdown", markdown, "-window", "300ms")
	cmd.Env = append(os.Environ(), cliEnv+"=1", "SPINNER="+spinnerPath(t), "PIDFILE="+pidFile,
		"BENCH_QUIET_WAIT=1s", "BENCH_ROUNDS=3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("stdout:\n%s\nstderr:\n%s", &stdout, &stderr)

	b, readErr := os.ReadFile(pidFile)
	require.NoError(t, readErr)
	spinnerPid, convErr := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, convErr)
	t.Cleanup(func() {
		if p, err := os.FindProcess(spinnerPid); err == nil && !processGone(spinnerPid) {
			_ = p.Kill()
		}
	})

	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode(), "a failed command makes benchrun fail")
	require.True(t, processGone(spinnerPid), "the process the first command left running outlived benchrun")
	require.Contains(t, stderr.String(), spinnerName+" ("+strconv.Itoa(spinnerPid)+") running: ending them")
	require.NotRegexp(t, spinnerName+` \d+ %`, stdout.String()+stderr.String(), "the benchmark's own leftover counted as another process")

	out := stdout.String()
	summary := out[strings.Index(out, "make bench: summary"):]
	require.Regexp(t, `rotations/s, concurrency 1 +ratio ≥ 0\.85 +163\.3/s vs 150\.1/s +0\.92 +pass +(quiet|BUSY) · load `, summary)
	require.Regexp(t, `command failed \(exit status 3\): exit 3 .* FAILED `, summary)
	require.Regexp(t, `no figure from: true .* none `, summary)
	require.Contains(t, out, "1 of 3 commands failed")

	md, err := os.ReadFile(markdown)
	require.NoError(t, err)
	require.Contains(t, string(md), "Measured "+time.Now().Format("2006-01-02")+" with `make bench` on ")
	require.Contains(t, string(md), "| figure | aim | measured | ratio | result | machine |\n| --- | --- | --- | --- | --- | --- |\n| rotations/s, concurrency 1 | ratio ≥ 0.85 | 163.3/s vs 150.1/s | 0.92 | pass | ")
	require.Contains(t, string(md), "3. `true`\n")
}

func TestCLIRejectsBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"no commands", nil, "", "nothing to run"},
		{"missing plan", []string{"-plan", "/nonexistent/plan.txt"}, "", "-plan: open /nonexistent/plan.txt"},
		{"plan and arguments", []string{"-plan", "x", "true"}, "", "not both"},
		{"bad env", []string{"true"}, "soon", `BENCH_QUIET_WAIT="soon"`},
		{"bad window", []string{"-window", "0", "true"}, "", "-window must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("BENCH_QUIET_WAIT", c.env)
			}
			var stdout, stderr bytes.Buffer
			require.Equal(t, 2, cli(c.args, &stdout, &stderr))
			require.Contains(t, stderr.String(), c.want)
		})
	}
}
