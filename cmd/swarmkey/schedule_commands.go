package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

func newRunDueCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run-due",
		Short: "Rotate, in this process, every policy whose planned slot has come, then exit",
		Long: `run-due is the container-job mode: it plans every policy as the daemon would,
rotates those whose slot has come (one after another, in this process), prints
a summary, and exits 0, or 1 when any rotation failed or any policy is
overdue. It takes the daemon's locks and request keys, so it is safe beside a
running daemon: each fire rotates once.`,
		Args: cobra.NoArgs,
		RunE: g.withSession(func(cmd *cobra.Command, _ []string, sess *session) error {
			ctx := cmd.Context()
			if _, err := sess.db.Migrate(ctx); err != nil {
				return err
			}
			set, err := sess.env.policySet()
			if err != nil {
				return usageError("%v", err)
			}
			results, err := daemon.RunDue(ctx, sess.db, set, sess.logger, time.Now().UTC())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "POLICY\tOUTCOME\tNEXT SLOT\tDETAIL")
			var failed, overdue []string
			for _, r := range results {
				next := "-"
				if !r.Next.IsZero() {
					next = r.Next.Local().Format(time.RFC3339)
				}
				outcome := string(r.Outcome)
				if r.Overdue {
					outcome += " (overdue)"
					overdue = append(overdue, r.Policy)
				}
				if r.Outcome == daemon.DueFailed {
					failed = append(failed, r.Policy)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Policy, outcome, next, r.Detail)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(failed)+len(overdue) > 0 {
				return fmt.Errorf("run-due: %d failed %v, %d overdue %v", len(failed), failed, len(overdue), overdue)
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
	var policy, from, to, output string
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
			ctx := cmd.Context()
			set, err := sess.env.policySet()
			if err != nil {
				return usageError("%v", err)
			}
			names := make([]string, 0, len(set.Policies))
			for _, p := range sess.cfg.Policies {
				if policy == "" || p.Name == policy {
					names = append(names, p.Name)
				}
			}
			if len(names) == 0 {
				return usageError("--policy %q: unknown policy", policy)
			}
			states, err := sess.db.PlanStates(ctx)
			if err != nil {
				return err
			}
			busy, err := sess.db.Calendar(ctx, fromT, set.Expand)
			if err != nil {
				return err
			}
			busy.Deny = append(busy.Deny, set.Deny...)
			cal := schedule.NewCalendar(busy)
			var rows []planRow
			for _, name := range names {
				p := set.Policies[name]
				st := states[name]
				for _, w := range schedule.Upcoming(p.Plan, schedule.State{LastRotated: derefTime(st.RotatedAt)}, cal.For(name), fromT, 200) {
					if !w.Window.Start.Before(toT) {
						break
					}
					row := planRow{Policy: name, WindowStart: w.Window.Start, WindowEnd: w.Window.End}
					if w.Deferred() {
						row.BlockedBy = describe(w.Blockers)
					} else {
						slot := w.Start
						row.Slot = &slot
						if slot.After(w.Window.Start) {
							row.PushedBy = describe(schedule.BlockersAt(p.Plan, cal.For(name), w.Window.Start))
						}
					}
					rows = append(rows, row)
				}
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
					slot, why = r.Slot.Local().Format("2006-01-02 15:04:05 MST"), strings.Join(r.PushedBy, "; ")
				}
				fmt.Fprintf(tw, "%s\t%s – %s\t%s\t%s\n", r.Policy, r.WindowStart.Local().Format("2006-01-02 15:04 MST"),
					r.WindowEnd.Local().Format("15:04 MST"), slot, why)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&policy, "policy", "", "only this policy")
	cmd.Flags().StringVar(&from, "from", "now", "start of the period (RFC 3339, now, +2h)")
	cmd.Flags().StringVar(&to, "to", "+7d", "end of the period (RFC 3339, now, +2h)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func describe(ivs []schedule.Interval) []string {
	out := make([]string, 0, len(ivs))
	for _, iv := range ivs {
		out = append(out, fmt.Sprintf("%s %q until %s", iv.Kind, iv.Name, iv.End.Local().Format("2006-01-02 15:04 MST")))
	}
	return out
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// rotateThroughDaemon inserts a rotation job for the daemon (only database
// access needed) and, with wait, follows it step by step.
func rotateThroughDaemon(ctx context.Context, g *globals, sess *session, name string, force, wait bool) error {
	set, err := sess.env.policySet()
	if err != nil {
		return usageError("%v", err)
	}
	p, ok := set.Policies[name]
	if !ok {
		return usageError("unknown policy %q: `swarmkey status` lists the policies of %v", name, sess.cfg.Files)
	}
	operator := "operator:" + operatorName()
	blockers, nextFree, err := daemon.Blockers(ctx, sess.db, set, name, time.Now().UTC())
	if err != nil {
		return err
	}
	if len(blockers) > 0 && !force {
		next := "no free slot within a year"
		if !nextFree.IsZero() {
			next = "the next allowed slot is " + nextFree.Local().Format(time.RFC3339)
		}
		return &exitError{code: exitFailed, err: fmt.Errorf("rotate %s refused: %s; %s (or pass --force, which is audited)",
			name, strings.Join(describe(blockers), "; "), next)}
	}

	client, err := river.NewClient(riverpgxv5.New(sess.db.Pool), &river.Config{})
	if err != nil {
		return err
	}
	key := "request:" + uuid.Must(uuid.NewV7()).String()
	args := daemon.RotateArgs{Policy: name, Key: key, Slot: time.Now().UTC(), Force: force, Actor: operator}
	opts := args.InsertOpts()
	opts.MaxAttempts = max(p.MaxAttempts, 1)
	job, err := client.Insert(ctx, args, &opts)
	if err != nil {
		return fmt.Errorf("ask the daemon: %w", err)
	}
	if force {
		detail := map[string]any{"request": key}
		if len(blockers) > 0 {
			detail["overrides"] = describe(blockers)
		}
		if err := sess.db.AppendAudit(ctx, state.AuditEntry{Actor: operator, Policy: name, Action: "rotation.forced", Detail: detail}); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.stdout, "asked the daemon to rotate %s (request %s)\n", name, key)
	if !wait {
		return nil
	}
	return followRotation(ctx, g, sess, client, job.Job.ID, key)
}

// followRotation prints each step of the request's rotations as it
// completes and returns when the job is done.
func followRotation(ctx context.Context, g *globals, sess *session, client *river.Client[pgx.Tx], jobID int64, key string) error {
	printed := map[string]int{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		rows, err := sess.db.ByKey(ctx, key)
		if err != nil {
			return err
		}
		for _, r := range rows {
			for _, s := range r.Steps[printed[r.Token]:] {
				fmt.Fprintf(g.stdout, "  %-8s %8s\n", s.Step, s.Duration.Round(time.Millisecond))
			}
			printed[r.Token] = len(r.Steps)
		}
		job, err := client.JobGet(ctx, jobID)
		if err != nil {
			return err
		}
		switch job.State {
		case rivertype.JobStateCompleted:
			if len(rows) == 0 {
				fmt.Fprintf(g.stdout, "the daemon finished request %s\n", key)
				return nil
			}
			last := rows[len(rows)-1]
			fmt.Fprintf(g.stdout, "rotated %s: %s is current (token %s)\n", last.Policy, orDash(last.Principal), last.Token)
			return nil
		case rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
			reason := "the daemon gave up"
			if len(rows) > 0 {
				reason = fmt.Sprintf("rotation %s %s: %s", rows[len(rows)-1].Token, rows[len(rows)-1].Outcome, rows[len(rows)-1].Error)
			}
			return fmt.Errorf("rotate %s failed: %s", key, reason)
		case rivertype.JobStateRetryable:
			if len(rows) > 0 && rows[len(rows)-1].Outcome != state.OutcomeRunning {
				fmt.Fprintf(g.stdout, "  attempt %d failed (%s); the daemon retries at %s\n", job.Attempt,
					rows[len(rows)-1].Error, job.ScheduledAt.Local().Format(time.RFC3339))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following; the daemon carries on with request %s", key)
		case <-tick.C:
		}
	}
}
