package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/termtext"
)

// manyFlags are rotate's flags for emergency rotation: many policies at once.
type manyFlags struct {
	tags        []string
	all         bool
	concurrency int
}

func (m *manyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&m.tags, "tag", nil, "rotate every policy with this tag (repeatable); no NAME then")
	cmd.Flags().BoolVar(&m.all, "all", false, "rotate every configured policy; no NAME then")
	cmd.Flags().IntVar(&m.concurrency, "concurrency", 4, "with --tag or --all: how many policies rotate at once")
}

func (m *manyFlags) selected() bool { return m.all || len(m.tags) > 0 }

// check refuses flag combinations that say two things at once.
func (m *manyFlags) check(cmd *cobra.Command, args []string, replace bool) error {
	switch {
	case m.all && len(m.tags) > 0:
		return usageError("--all and --tag: give one (--all already includes every tag)")
	case m.selected() && len(args) > 0:
		return usageError("rotate %s with --tag or --all: give a policy NAME or the selection, not both", args[0])
	case !m.selected() && len(args) == 0:
		return usageError("rotate needs a policy NAME, --tag T or --all")
	case !m.selected() && cmd.Flags().Changed("concurrency"):
		return usageError("--concurrency applies to --tag and --all only: rotate NAME rotates one policy")
	case m.selected() && replace:
		return usageError("--replace-unreadable-current takes one policy NAME: replacing what swarmkey cannot read is decided policy by policy")
	case m.concurrency < 1:
		return usageError("--concurrency %d: give 1 or more", m.concurrency)
	}
	for _, t := range m.tags {
		if strings.TrimSpace(t) == "" {
			return usageError("--tag is empty: give a tag of the policy files (tags:)")
		}
	}
	return nil
}

func (m *manyFlags) selector() string {
	if m.all {
		return "all"
	}
	sel := make([]string, len(m.tags))
	for i, t := range m.tags {
		sel[i] = "tag:" + t
	}
	return strings.Join(sel, ",")
}

// isTerminal reports whether w is a terminal: the progress bar is drawn
// only there; a pipe or a file gets plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// rotateMany is rotate --tag/--all: it rotates the selected policies, shows
// progress, prints the summary table and exits 0 only when every policy
// rotated.
func rotateMany(ctx context.Context, g *globals, sess *app.Session, m manyFlags, local, force bool) error {
	names, err := sess.SelectPolicies(m.tags, m.all)
	if err != nil {
		return err
	}
	where := "through the daemon"
	if local {
		where = "in this process"
	}
	fmt.Fprintf(g.stdout, "rotating %d policies (%s) %s, %d at a time\n", len(names), m.selector(), where, m.concurrency)

	var bar *progressbar.ProgressBar
	onDone := printManyLine(g.stdout)
	if isTerminal(g.stdout) {
		bar = progressbar.NewOptions(len(names), progressbar.OptionSetWriter(g.stdout), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionSetElapsedTime(true), progressbar.OptionFullWidth(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetDescription("rotating"))
		failed := 0
		onDone = func(r app.ManyResult) {
			if r.Outcome != app.ManyRotated {
				failed++
			}
			bar.Describe(fmt.Sprintf("%d not rotated", failed))
			_ = bar.Add(1)
		}
	}
	start := time.Now()
	results, err := sess.RotateMany(ctx, app.RotateManyOptions{
		Policies: names, Selector: m.selector(), Local: local, Force: force, Concurrency: m.concurrency,
		Actor: "operator:" + lease.OperatorName(), OnDone: onDone,
	})
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(g.stdout)
	}
	if errors.Is(err, daemon.ErrNoDaemon) {
		return &exitError{code: exitFailed, err: fmt.Errorf("rotate %s: %w; nothing was queued. Start the daemon (swarmkey serve), or rotate in this process with --local", m.selector(), err)}
	}
	if len(results) > 0 || err == nil {
		printManySummary(g.stdout, names, results, time.Since(start))
	}
	if err != nil {
		return err
	}
	return manyExit(m.selector(), len(names), results)
}

func printManyLine(w io.Writer) func(app.ManyResult) {
	return func(r app.ManyResult) {
		fmt.Fprintf(w, "  %-8s %s  %s  %s\n", strings.ToUpper(string(r.Outcome)), r.Policy, r.Duration.Round(time.Millisecond), manyDetail(r))
	}
}

// manyDetail is what the summary says of a policy: its new principal, or
// why it did not rotate (errors never hold a value).
func manyDetail(r app.ManyResult) string {
	switch {
	case r.Outcome == app.ManyRotated:
		return termtext.Printable(orDash(r.Principal)) + " is current"
	case r.RolledBack:
		return "rolled back, the current credential is unchanged: " + termtext.Printable(r.Err.Error())
	case r.Err != nil:
		return termtext.Printable(r.Err.Error())
	}
	return "-"
}

// printManySummary prints how many policies ended each way, then a row for
// every policy that did not rotate, and for a policy never reached (the
// command was interrupted) says so.
func printManySummary(w io.Writer, names []string, results []app.ManyResult, took time.Duration) {
	counts := map[app.ManyOutcome]int{}
	reached := map[string]bool{}
	for _, r := range results {
		counts[r.Outcome]++
		reached[r.Policy] = true
	}
	fmt.Fprintf(w, "\nsummary: %d of %d policies rotated in %s\n", counts[app.ManyRotated], len(names), took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tPOLICIES")
	for _, o := range []app.ManyOutcome{app.ManyRotated, app.ManyFailed, app.ManyBlocked, app.ManyBusy, app.ManyInvalid} {
		if counts[o] > 0 {
			fmt.Fprintf(tw, "%s\t%d\n", o, counts[o])
		}
	}
	if n := len(names) - len(results); n > 0 {
		fmt.Fprintf(tw, "not started\t%d\n", n)
	}
	_ = tw.Flush()
	if len(results) == counts[app.ManyRotated] && len(results) == len(names) {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tOUTCOME\tDETAIL")
	for _, r := range results {
		if r.Outcome != app.ManyRotated {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Policy, r.Outcome, manyDetail(r))
		}
	}
	for _, name := range names {
		if !reached[name] {
			fmt.Fprintf(tw, "%s\tnot started\t-\n", name)
		}
	}
	_ = tw.Flush()
}

// manyExit is the exit of rotate --tag/--all, as run-due's: 2 when some
// policy could not start for bad input, else 1 when some policy did not
// rotate, naming each one; 0 when all did.
func manyExit(selector string, total int, results []app.ManyResult) error {
	var bad []string
	code := exitOK
	for _, r := range results {
		if r.Outcome == app.ManyRotated {
			continue
		}
		bad = append(bad, fmt.Sprintf("%s (%s)", r.Policy, r.Outcome))
		if r.Outcome == app.ManyInvalid {
			code = exitUsage
		} else if code == exitOK {
			code = exitFailed
		}
	}
	if code == exitOK {
		return nil
	}
	return &exitError{code: code, err: fmt.Errorf("rotate %s: %d of %d policies did not rotate: %s", selector, len(bad), total, strings.Join(bad, ", "))}
}
