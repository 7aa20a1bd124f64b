// Command benchrun runs `make bench`: the benchmark commands of a plan, one
// after another, each on a quiet machine if it can have one. Before each
// command it waits (bounded) until the 1-minute load average is under 0.4
// and no other process takes more than 5 % of a core; it records the load
// average and the busiest other processes before, during and after the
// command; it passes the command's output through and gathers its figures
// (the HEADLINE lines of bench/internal/headline, and metric columns of go
// test benchmarks that the plan names); and at the end it prints one table:
// figure, aim, measured, ratio, pass or miss, and the machine's state, BUSY
// when it was not quiet. With -markdown it writes the same table as
// Markdown for the README. It exits 1 when a command failed.
//
// "Other" processes are those outside benchrun's own process tree: the
// benchmark, its children and what they start (a throwaway PostgreSQL)
// count as the benchmark. benchrun is its children's subreaper, so a server
// started in the background stays in the tree, and what a command leaves
// running is ended before the next.
//
// Linux only: it reads /proc.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() { os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr)) }

const usageText = `usage: benchrun [flags] [-plan FILE | COMMAND…]

Runs each benchmark command (a plan file's lines, or the arguments, each
run with /bin/sh -c) on a quiet machine if it can, and prints a summary
table of their figures with the machine's state.

`

// cli is main without the exit: 0 when every command succeeded, 1 when one
// failed, 2 for bad flags or a bad plan.
func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	planFile := fs.String("plan", "", "the plan: one command per line (see bench/plan.txt)")
	markdown := fs.String("markdown", "", "also write the table as Markdown, with the date and the machine, to this file")
	quietLoad := fs.Float64("quiet-load", 0.4, "quiet: the 1-minute load average is below this (env BENCH_QUIET_LOAD)")
	quietCPU := fs.Float64("quiet-cpu", 5, "quiet: no other process takes more than this percentage of a core (env BENCH_QUIET_CPU)")
	quietWait := fs.Duration("quiet-wait", 4*time.Minute, "the longest wait for a quiet machine before each command; then it runs anyway, marked BUSY (env BENCH_QUIET_WAIT)")
	window := fs.Duration("window", 2*time.Second, "how long CPU use is sampled for, each time")
	if err := envDefaults(fs, map[string]string{
		"BENCH_QUIET_LOAD": "quiet-load", "BENCH_QUIET_CPU": "quiet-cpu", "BENCH_QUIET_WAIT": "quiet-wait",
	}); err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	plan, err := loadPlan(*planFile, fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 2
	}
	if *window <= 0 || *quietWait < 0 {
		fmt.Fprintln(stderr, "benchrun: -window must be positive and -quiet-wait not negative")
		return 2
	}
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintln(stderr, "benchrun: becoming the commands' subreaper:", err)
		return 2
	}

	r := &runner{
		procDir:     "/proc",
		self:        os.Getpid(),
		rule:        quietRule{maxLoad: *quietLoad, maxShare: *quietCPU / 100, wait: *quietWait, window: *window},
		ownsOrphans: true,
		stdout:      stdout, stderr: stderr, log: stderr,
	}
	var results []commandResult
	failed := 0
	for i, c := range plan {
		res, err := r.run(fmt.Sprintf("[%d/%d]", i+1, len(plan)), c)
		if err != nil {
			fmt.Fprintln(stderr, "benchrun: reading the machine's state:", err)
			return 2
		}
		if res.err != nil {
			failed++
		}
		results = append(results, res)
	}

	fmt.Fprintf(stdout, "\nmake bench: summary (quiet = %s, waiting up to %s before each command)\n\n", r.rule, r.rule.wait)
	if err := writeText(stdout, results); err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 2
	}
	if busy := countBusy(results); busy > 0 {
		fmt.Fprintf(stdout, "\n%d of %d commands ran on a busy machine: their figures (BUSY) are not figures to quote; run again when the machine is quiet.\n", busy, len(results))
	}
	if *markdown != "" {
		rep := report{date: time.Now(), machine: readMachineInfo("/proc", runtime.NumCPU()), rule: r.rule, env: usedEnv(results, os.LookupEnv)}
		if err := writeMarkdownFile(*markdown, rep, results); err != nil {
			fmt.Fprintln(stderr, "benchrun: -markdown:", err)
			return 2
		}
		fmt.Fprintf(stdout, "The table as Markdown, for the README: %s\n", *markdown)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d commands failed (FAILED rows above).\n", failed, len(results))
		return 1
	}
	return 0
}

func countBusy(results []commandResult) int {
	n := 0
	for _, res := range results {
		if res.state.busy {
			n++
		}
	}
	return n
}

// envDefaults sets each flag's default from its environment variable, so
// that `BENCH_QUIET_WAIT=30s make bench` works as well as the flag.
func envDefaults(fs *flag.FlagSet, vars map[string]string) error {
	for env, name := range vars {
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("%s=%q: %v (as for -%s: %s)", env, v, err, name, fs.Lookup(name).Usage)
		}
	}
	return nil
}

// loadPlan reads the plan file, or takes each argument as a command.
func loadPlan(path string, args []string) ([]planCommand, error) {
	switch {
	case path != "" && len(args) > 0:
		return nil, errors.New("give a -plan file or commands as arguments, not both")
	case path != "":
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("-plan: %w", err)
		}
		defer f.Close()
		return parsePlan(path, f)
	case len(args) == 0:
		return nil, errors.New("nothing to run: give -plan FILE or commands as arguments (benchrun -h)")
	}
	plan := make([]planCommand, len(args))
	for i, a := range args {
		if strings.TrimSpace(a) == "" {
			return nil, fmt.Errorf("argument %d is empty: want a command", i+1)
		}
		plan[i] = planCommand{where: "argument " + strconv.Itoa(i+1), command: a}
	}
	return plan, nil
}
