package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/state"
)

func newRunsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "Schedule, list and cancel the Locust runs that rotations wait for",
		Long: `runs manages the Locust run calendar in the state database. A run names the
policies whose credentials it uses (or tag:NAME for every policy with that
tag); no rotation of those policies starts while the run is scheduled, widened
by each policy's guard_before and guard_after.

A run is one-off (--start, --duration) or recurring (--every CRON, --duration,
--timezone). Times are RFC 3339 (2026-05-01T14:00:00+02:00), "now", or
relative to now (+2h, +90m, +1d, -30m), and are shown in the local zone unless
--timezone names another.`,
		// Without this, cobra prints the help and exits 0 for `runs frob`.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for \"swarmkey runs\": use add, list or cancel", args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newRunsAddCommand(g), newRunsListCommand(g), newRunsCancelCommand(g))
	return cmd
}

func newRunsAddCommand(g *globals) *cobra.Command {
	var name, start, every, zone, duration string
	var uses []string
	cmd := &cobra.Command{
		Use:   "add --name N (--start T | --every CRON [--timezone Z]) --duration D --uses P…",
		Short: "Schedule a one-off or recurring Locust run",
		Long: `add records a run. With --start it happens once, from T for --duration. With
--every it starts at every fire of the cron spec (five fields, or @daily,
@every 6h…) in --timezone (default UTC) and lasts --duration each time.

--uses names the policies whose credentials the run uses, or tag:NAME for
every policy with that tag; repeat it or separate names with commas. Each must
exist in the loaded configuration. The name must not belong to another active
run. The addition is recorded in the audit log with your user name.

Exit codes: 0 added, 2 bad input (nothing is written).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			raw := map[string]string{"name": name, "start": start, "every": every, "timezone": zone, "duration": duration}
			switch {
			case start != "" && every != "":
				return usageError("--start and --every: a run is either one-off (--start) or recurring (--every), not both")
			case start == "" && every == "":
				return usageError("--start or --every is required: --start T for a one-off run, --every CRON for a recurring one")
			case duration == "":
				return usageError("--duration is required: how long the run lasts, such as 90m or 2h")
			}
			display, err := runDisplayZone(zone)
			if err != nil {
				return err
			}
			d, err := config.ParseDuration(duration)
			if err != nil {
				return usageError("--duration %q: not a duration: use 90m, 2h, 1h30m or 1d", duration)
			}
			var at time.Time
			if start != "" {
				if at, err = parseWhen("--start", start, now); err != nil {
					return err
				}
				// Whole seconds: "+2h" should not list as 14:02:31.881228.
				at = at.Truncate(time.Second)
			}

			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			req := app.RunRequest{Name: name, Start: at, Duration: d, Uses: uses, Actor: "operator:" + lease.OperatorName()}
			if start == "" {
				req.Every, req.Timezone = every, zone
			}
			r, err := sess.AddRun(cmd.Context(), req)
			if err != nil {
				return runUsageError(err, name, raw)
			}
			v := viewRun(r, now, display)
			switch r.Kind {
			case state.RunOneOff:
				fmt.Fprintf(g.stdout, "added one-off run %q: %s to %s (%s), uses %s\n", r.Name,
					formatRunTime(v.Start), formatRunTime(v.End), formatRunDuration(r.Duration), strings.Join(r.Uses, ", "))
			default:
				fmt.Fprintf(g.stdout, "added recurring run %q: every %q in %s for %s, uses %s; next %s to %s\n", r.Name,
					r.Every, r.Timezone, formatRunDuration(r.Duration), strings.Join(r.Uses, ", "), formatRunTime(v.Start), formatRunTime(v.End))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the run's name, unique among active runs")
	f.StringVar(&start, "start", "", "start of a one-off run: RFC 3339, now, or relative (+2h, +90m)")
	f.StringVar(&every, "every", "", `cron spec of a recurring run ("0 2 * * *", "@daily", "@every 6h")`)
	f.StringVar(&zone, "timezone", "", "IANA zone of the --every schedule (default UTC), and the zone times are shown in (default local)")
	f.StringVar(&duration, "duration", "", "how long the run lasts (90m, 2h, 1h30m, 1d)")
	f.StringSliceVar(&uses, "uses", nil, "policies whose credentials the run uses, or tag:NAME (repeatable, comma-separated)")
	return cmd
}

func newRunsListCommand(g *globals) *cobra.Command {
	var all bool
	var output, zone string
	cmd := &cobra.Command{
		Use:   "list [--all] [-o json] [--timezone Z]",
		Short: "List the active runs (with --all, the cancelled ones too)",
		Long: `list shows each run: its start and end (for a recurring run, those of its
current or next occurrence), its schedule, the policies it uses, its state
(scheduled, running, ended, cancelled) and who added it. Times are shown in
the local zone, or in --timezone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError("--output %q: use text or json", output)
			}
			display, err := runDisplayZone(zone)
			if err != nil {
				return err
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			runs, err := sess.DB.ListRuns(cmd.Context(), all)
			if err != nil {
				return err
			}
			now := time.Now()
			views := make([]runView, 0, len(runs))
			for _, r := range runs {
				views = append(views, viewRun(r, now, display))
			}
			if output == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(views)
			}
			if len(views) == 0 {
				fmt.Fprintln(g.stdout, "no runs scheduled; add one with `swarmkey runs add`")
				return nil
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tKIND\tSTART\tEND\tDURATION\tSCHEDULE\tUSES\tSTATE\tADDED BY")
			for _, v := range views {
				kind, schedule := "one-off", "-"
				if v.Kind == state.RunRecurring {
					kind, schedule = "recurring", v.Every+" "+v.Timezone
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, kind, formatRunTime(v.Start), formatRunTime(v.End),
					formatRunDuration(v.duration), schedule, strings.Join(v.Uses, ","), v.State, v.CreatedBy)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include cancelled runs")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&zone, "timezone", "", "IANA zone to show times in (default: the local zone)")
	return cmd
}

func newRunsCancelCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel NAME",
		Short: "Cancel an active run: it no longer blocks rotations",
		Long: `cancel marks the active run NAME cancelled. Its record stays (runs list --all
shows it), its name may be used again, and the cancellation is recorded in the
audit log with your user name. Exit codes: 0 cancelled, 2 no active run has
that name.`,
		Args: cobra.ExactArgs(1),
		RunE: g.withSession(func(cmd *cobra.Command, args []string, sess *app.Session) error {
			r, err := sess.CancelRun(cmd.Context(), args[0], "operator:"+lease.OperatorName())
			if errors.Is(err, state.ErrNotFound) {
				return usageError("run %q: no active run has this name (`swarmkey runs list` shows them)", args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "cancelled run %q: it no longer blocks rotations of %s\n", r.Name, strings.Join(r.Uses, ", "))
			return nil
		}),
	}
}

// runView is a run as list shows it, at one instant, in the display zone;
// it is also the JSON form (`runs list -o json`).
type runView struct {
	Name string        `json:"name"`
	Kind state.RunKind `json:"kind"`
	// Start and End bound the one-off run, or the current or next
	// occurrence of a recurring one; none for a cancelled recurring run.
	Start           *time.Time `json:"start,omitempty"`
	End             *time.Time `json:"end,omitempty"`
	Every           string     `json:"every,omitempty"`
	Timezone        string     `json:"timezone,omitempty"`
	Duration        string     `json:"duration"`
	DurationSeconds float64    `json:"duration_seconds"`
	Uses            []string   `json:"uses"`
	// State is scheduled, running, ended (one-off only) or cancelled.
	State       string     `json:"state"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
	CancelledBy string     `json:"cancelled_by,omitempty"`

	duration time.Duration
}

func viewRun(r state.Run, now time.Time, zone *time.Location) runView {
	v := runView{
		Name: r.Name, Kind: r.Kind, Every: r.Every, Timezone: r.Timezone,
		Duration: formatRunDuration(r.Duration), DurationSeconds: r.Duration.Seconds(), duration: r.Duration,
		Uses: r.Uses, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.In(zone), CancelledBy: r.CancelledBy,
	}
	in := func(t time.Time) *time.Time { t = t.In(zone); return &t }
	if r.CancelledAt != nil {
		v.CancelledAt = in(*r.CancelledAt)
	}
	o := r.At(now)
	if !o.Start.IsZero() {
		v.Start, v.End = in(o.Start), in(o.End)
	}
	v.State = o.State
	return v
}

// runUsageError turns the store's refusal of a run into a usage error that
// names the flag and quotes what was typed.
func runUsageError(err error, name string, raw map[string]string) error {
	var inv *state.InvalidRunError
	switch {
	case errors.As(err, &inv):
		value := inv.Value
		if typed, ok := raw[inv.Field]; ok && typed != "" {
			value = typed
		}
		return usageError("--%s %q: %s", inv.Field, value, inv.Reason)
	case errors.Is(err, state.ErrRunExists):
		return usageError("--name %q: an active run already has this name: cancel it first (`swarmkey runs cancel %s`) or pick another name", name, name)
	}
	return err
}

// runDisplayZone loads the zone that times are shown in: name, or the local
// zone when name is empty.
func runDisplayZone(name string) (*time.Location, error) {
	if name == "" {
		return time.Local, nil
	}
	if name == "Local" {
		return nil, usageError("--timezone %q: name an IANA zone such as Europe/Berlin, or leave it out for the local zone", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, usageError("--timezone %q: not an IANA zone name (such as Europe/Berlin or UTC)", name)
	}
	return loc, nil
}

func formatRunTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	// A run's times stay in the run's own zone (its schedule's), in the
	// CLI's one format.
	return t.Format(time.RFC3339)
}

// formatRunDuration prints "2h" rather than Go's "2h0m0s".
func formatRunDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
