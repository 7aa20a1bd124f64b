package main

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/swarmkey/swarmkey/bench/internal/headline"
	"github.com/swarmkey/swarmkey/bench/internal/proc"
)

// quietRule says when the machine is quiet enough to measure on.
type quietRule struct {
	// maxLoad: the 1-minute load average must be below it.
	maxLoad float64
	// maxShare: no other process name may take more of a core than this
	// (0.05 = 5 %) over the sampling window.
	maxShare float64
	// wait bounds the wait for quiet before a command; then it runs anyway
	// and its figures are marked busy.
	wait time.Duration
	// window is how long CPU use is sampled for.
	window time.Duration
}

func (r quietRule) String() string {
	return fmt.Sprintf("1-minute load average under %g, no other process above %g %% of a core", r.maxLoad, 100*r.maxShare)
}

// othersBusy says whether the busiest of others is above the limit.
func (r quietRule) othersBusy(others []usage) bool {
	return len(others) > 0 && others[0].share > r.maxShare
}

func (r quietRule) quiet(p probe) bool { return p.load.one < r.maxLoad && !r.othersBusy(p.others) }

// probe is the machine at one moment: the load average, and the CPU the
// processes outside benchrun's tree took over the window just before.
type probe struct {
	load   loadAvg
	others []usage
}

// machineState is what benchrun saw around one command.
type machineState struct {
	before probe // the last probe of the wait for quiet
	quiet  bool  // the wait ended with a quiet machine
	// during is the others' CPU over the whole command, sampled each
	// window; nil when the command ran for less than a window, too short
	// to tell from ticks.
	during     []usage
	after      probe
	busyDuring bool // others were busy during the command
	busy       bool // not quiet before, or others busy during
}

// String is the table's machine column: "quiet · load 0.21→1.85", or
// "BUSY · load 2.30→2.41 · python3 25 %, go 7 %".
func (s machineState) String() string {
	load := fmt.Sprintf("load %.2f→%.2f", s.before.load.one, s.after.load.one)
	if !s.busy {
		return "quiet · " + load
	}
	parts := []string{"BUSY", load}
	if !s.quiet && len(s.before.others) > 0 {
		parts = append(parts, busiest(s.before.others))
	}
	if s.busyDuring {
		parts = append(parts, "during: "+busiest(s.during))
	}
	return strings.Join(parts, " · ")
}

// busiest names the top two others.
func busiest(others []usage) string {
	var names []string
	for _, u := range others[:min(2, len(others))] {
		names = append(names, u.String())
	}
	return strings.Join(names, ", ")
}

// commandResult is one command's outcome.
type commandResult struct {
	cmd     planCommand
	figures []headline.Figure
	err     error // the command failed
	state   machineState
}

// runner runs commands one after another and records the machine's state
// around each.
type runner struct {
	procDir string
	// self roots the process tree that counts as the benchmark: benchrun
	// and everything it starts. Everything else is "others".
	self int
	rule quietRule
	// ownsOrphans: benchrun is its children's subreaper (what a command
	// leaves running is re-parented to it, so stays in its tree), and ends
	// and reaps what a command leaves behind before the next one.
	ownsOrphans bool
	// stdout and stderr receive the commands' output; log benchrun's own.
	stdout, stderr, log io.Writer
}

// probe samples the others' CPU over one window, then the load average.
func (r *runner) probe() (probe, error) {
	a, err := readSnapshot(r.procDir)
	if err != nil {
		return probe{}, err
	}
	time.Sleep(r.rule.window)
	b, err := readSnapshot(r.procDir)
	if err != nil {
		return probe{}, err
	}
	load, err := readLoadAvg(r.procDir)
	if err != nil {
		return probe{}, err
	}
	return probe{load: load, others: othersBetween(a, b, r.self)}, nil
}

// waitQuiet probes until the machine is quiet or the rule's wait is over,
// and returns the last probe.
func (r *runner) waitQuiet(label string) (last probe, quiet bool, err error) {
	start := time.Now()
	var told time.Time
	for {
		p, err := r.probe()
		if err != nil {
			return probe{}, false, err
		}
		if r.rule.quiet(p) {
			return p, true, nil
		}
		waited := time.Since(start)
		if waited >= r.rule.wait {
			fmt.Fprintf(r.log, "benchrun %s: still busy after %s (%s): running anyway, its figures are marked BUSY\n",
				label, waited.Round(time.Second), describe(p))
			return p, false, nil
		}
		if time.Since(told) >= 30*time.Second {
			fmt.Fprintf(r.log, "benchrun %s: waiting up to %s for a quiet machine (%s); now %s\n",
				label, r.rule.wait, r.rule, describe(p))
			told = time.Now()
		}
	}
}

func describe(p probe) string {
	s := "load " + p.load.String()
	if len(p.others) > 0 {
		s += ", others: " + busiest(p.others)
	}
	return s
}

// run waits for quiet, runs one command with its output passed through,
// and gathers its figures and the machine's state. An error is benchrun's
// own (reading /proc); the command's failure is in the result.
func (r *runner) run(label string, c planCommand) (commandResult, error) {
	res := commandResult{cmd: c}
	st := &res.state
	var err error
	if st.before, st.quiet, err = r.waitQuiet(label); err != nil {
		return res, err
	}

	// The others' CPU during the command, from a snapshot each window:
	// a process that ends before the command does still counts, and the
	// benchmark's own servers are seen in its tree while they run.
	during := newCPUTally(r.self)
	start, err := readSnapshot(r.procDir)
	if err != nil {
		return res, err
	}
	during.add(start)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(r.rule.window)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				// An unreadable /proc now shows at the end snapshot.
				if s, err := readSnapshot(r.procDir); err == nil {
					during.add(s)
				}
			}
		}
	}()
	fmt.Fprintf(r.log, "benchrun %s (%s) $ %s\n", label, c.where, c.command)
	cmd := exec.Command("/bin/sh", "-c", c.command)
	out := &figureCollector{out: r.stdout, rules: c.metrics}
	cmd.Stdout, cmd.Stderr = out, r.stderr
	// A process the command leaves running may hold the output pipe open;
	// do not wait for it for ever.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		res.err = err
	}
	out.finish()
	res.figures = out.figures
	close(stopSampling)
	<-sampled
	end, err := readSnapshot(r.procDir)
	if err != nil {
		return res, err
	}
	during.add(end)
	if end.at.Sub(start.at) >= r.rule.window {
		st.during = during.others()
	}
	if r.ownsOrphans {
		r.endLeftovers(label)
	}
	if st.after, err = r.probe(); err != nil {
		return res, err
	}
	st.busyDuring = r.rule.othersBusy(st.during)
	st.busy = !st.quiet || st.busyDuring
	return res, nil
}

// endLeftovers kills what the command left running in benchrun's tree (a
// server it started and did not stop, say) and reaps it, so that it
// neither weighs on the next command nor outlives benchrun.
func (r *runner) endLeftovers(label string) {
	deadline := time.Now().Add(10 * time.Second)
	told := false
	for {
		reapChildren()
		s, err := readSnapshot(r.procDir)
		if err != nil {
			return
		}
		var left []proc.Stat
		for pid := range s.tree(r.self) {
			if p := s.procs[pid]; pid != r.self && p.State != 'Z' {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return
		}
		if !told {
			var names []string
			for _, p := range left {
				names = append(names, fmt.Sprintf("%s (%d)", p.Name, p.PID))
			}
			fmt.Fprintf(r.log, "benchrun %s: the command left %s running: ending them\n", label, strings.Join(names, ", "))
			told = true
		}
		for _, p := range left {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reapChildren collects the exit status of every child that has ended:
// as subreaper benchrun inherits the orphans of its commands, whose
// zombies only it can clear.
func reapChildren() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// becomeSubreaper makes the processes that the commands start and then
// abandon (PostgreSQL, which pg_ctl starts in the background) children of
// benchrun instead of init, so that they count as the benchmark.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
