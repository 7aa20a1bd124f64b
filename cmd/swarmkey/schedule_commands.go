package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/termtext"
)

func newRunDueCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run-due",
		Short: "Rotate, in this process, every policy whose planned slot has come, then exit",
		Long: `run-due is the container-job mode: it plans every policy as the daemon would,
rotates those whose slot has come (one after another, in this process), prints
a summary, and exits 0; 2 when a due policy could not start for bad input
(a reference that does not resolve: fix it and run again); otherwise 1 when
any rotation failed or any policy is overdue. It takes the daemon's locks and
request keys, so it is safe beside a running daemon: each fire rotates once.`,
		Args: cobra.NoArgs,
		RunE: g.withSession(func(cmd *cobra.Command, _ []string, sess *app.Session) error {
			ctx := cmd.Context()
			if _, err := sess.DB.Migrate(ctx); err != nil {
				return err
			}
			set := sess.PolicySet()
			results, err := daemon.RunDue(ctx, sess.DB, set, sess.Logger, time.Now().UTC())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "POLICY\tOUTCOME\tNEXT SLOT\tDETAIL")
			var failed, overdue, badInput []string
			for _, r := range results {
				next := "-"
				if !r.Next.IsZero() {
					next = cliTime(r.Next)
				}
				outcome := string(r.Outcome)
				if r.Overdue {
					outcome += " (overdue)"
					overdue = append(overdue, r.Policy)
				}
				var input *app.InputError
				switch {
				case r.Outcome == daemon.DueFailed && errors.As(r.Err, &input):
					badInput = append(badInput, r.Policy)
				case r.Outcome == daemon.DueFailed:
					failed = append(failed, r.Policy)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Policy, outcome, next, termtext.Printable(r.Detail))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			summary := fmt.Sprintf("%d failed %v, %d overdue %v", len(failed), failed, len(overdue), overdue)
			if len(badInput) > 0 {
				// Bad input is the one to fix first: until then those
				// policies never rotate.
				return &exitError{code: exitUsage, err: fmt.Errorf("run-due: %d could not start for bad input %v (see DETAIL; fix and run again), %s",
					len(badInput), badInput, summary)}
			}
			if len(failed)+len(overdue) > 0 {
				return fmt.Errorf("run-due: %s", summary)
			}
			return nil
		}),
	}
}

// parseWhen reads an instant for a flag: RFC 3339, "now", or relative to
// now ("+2h", "-30m", "+1d").
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-"):
		d, err := config.ParseDuration(s[1:])
		if err != nil || d < 0 {
			return time.Time{}, usageError("%s %q: a relative time is a duration (90m, 2h, 1d12h) after + or -", flag, s)
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usageError("%s %q: use RFC 3339 (2026-12-01T09:00:00+01:00), now, or +DURATION (+2h)", flag, s)
	}
	return t, nil
}

type planRow struct {
	Policy      string    `json:"policy"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Slot is the chosen start; zero when the fire is deferred.
	Slot      *time.Time `json:"slot,omitempty"`
	BlockedBy []string   `json:"blocked_by,omitempty"`
	// PushedBy are the intervals that moved the slot after the window start.
	PushedBy []string `json:"pushed_by,omitempty"`
}

func newPlanCommand(g *globals) *cobra.Command {
	var policy, from, to, output, htmlFile string
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the coming rotations: fires, windows, chosen slots, and what pushed or blocked them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now().UTC()
			fromT, err := parseWhen("--from", from, now)
			if err != nil {
				return err
			}
			toT, err := parseWhen("--to", to, now)
			if err != nil {
				return err
			}
			if !toT.After(fromT) {
				return usageError("--to %q is not after --from %q", to, from)
			}
			if output != "table" && output != "json" {
				return usageError("-o %q: use table or json", output)
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			set := sess.PolicySet()
			var names []string
			for _, p := range sess.Config.Policies {
				if policy == "" || p.Name == policy {
					names = append(names, p.Name)
				}
			}
			if len(names) == 0 {
				return usageError("--policy %q: unknown policy", policy)
			}
			if htmlFile != "" {
				return writeTimeline(cmd, g, sess, set, names, now, fromT, toT, htmlFile)
			}
			upcoming, err := daemon.Upcoming(cmd.Context(), sess.DB, set, names, fromT, toT)
			if err != nil {
				return err
			}
			rows := make([]planRow, len(upcoming))
			for i, u := range upcoming {
				rows[i] = planRow{Policy: u.Policy, WindowStart: u.WindowStart, WindowEnd: u.WindowEnd, Slot: u.Slot,
					BlockedBy: describe(u.BlockedBy), PushedBy: describe(u.PushedBy)}
			}
			if output == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "POLICY\tWINDOW\tSLOT\tBECAUSE OF")
			for _, r := range rows {
				slot, why := "deferred", strings.Join(r.BlockedBy, "; ")
				if r.Slot != nil {
					slot, why = cliTime(*r.Slot), strings.Join(r.PushedBy, "; ")
				}
				fmt.Fprintf(tw, "%s\t%s – %s\t%s\t%s\n", r.Policy, cliTime(r.WindowStart), cliTime(r.WindowEnd), slot, why)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&policy, "policy", "", "only this policy")
	cmd.Flags().StringVar(&from, "from", "now", "start of the period (RFC 3339, now, +2h)")
	cmd.Flags().StringVar(&to, "to", "+7d", "end of the period (RFC 3339, now, +2h)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().StringVar(&htmlFile, "html", "", "write the timeline page (HTML, no value in it) to this file instead of printing")
	return cmd
}

func describe(ivs []schedule.Interval) []string {
	out := make([]string, 0, len(ivs))
	for _, iv := range ivs {
		out = append(out, fmt.Sprintf("%s %q until %s", iv.Kind, iv.Name, cliTime(iv.End)))
	}
	return out
}

// rotateThroughDaemon asks the daemon for a rotation (only database access
// needed) and, with wait, follows it step by step.
func rotateThroughDaemon(ctx context.Context, g *globals, sess *app.Session, name string, force, wait bool) error {
	ticket, err := sess.Enqueue(ctx, daemon.Request{Policy: name, Force: force, Actor: "operator:" + lease.OperatorName()})
	var blocked *daemon.BlockedError
	if errors.As(err, &blocked) {
		return &exitError{code: exitFailed, err: err}
	}
	if errors.Is(err, daemon.ErrNoDaemon) {
		return &exitError{code: exitFailed, err: fmt.Errorf("rotate %s: %w; nothing was queued. Start the daemon (swarmkey serve), or rotate in this process with: swarmkey rotate %s --local", name, err, name)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "asked the daemon to rotate %s (request %s)\n", name, ticket.Key)
	if !wait {
		return nil
	}
	last, err := sess.Follow(ctx, ticket, func(p daemon.Progress) {
		if p.Retry {
			fmt.Fprintf(g.stdout, "  attempt %d failed (%s); the daemon retries at %s\n", p.Attempt, termtext.Printable(p.Reason), cliTime(p.At))
			return
		}
		fmt.Fprintf(g.stdout, "  %-8s %8s\n", p.Step.Step, p.Step.Duration.Round(time.Millisecond))
	})
	if err != nil {
		return err
	}
	if last == nil {
		fmt.Fprintf(g.stdout, "the daemon finished request %s\n", ticket.Key)
		return nil
	}
	fmt.Fprintf(g.stdout, "rotated %s: %s is current (token %s)\n", last.Policy, orDash(termtext.Printable(last.Principal)), last.Token)
	return nil
}
