package main

import (
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/termtext"
)

func newMigrateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply swarmkey's database migrations",
		Args:  cobra.NoArgs,
		RunE: g.withSession(func(cmd *cobra.Command, _ []string, sess *app.Session) error {
			n, err := sess.DB.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "applied %d migration(s); the schema is up to date\n", n)
			return nil
		}),
	}
}

func newValidateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE…]",
		Short: "Check config and policy files without touching anything",
		Long: `validate checks each file on its own (with its includes): YAML syntax, unknown
fields, types, references, schedules. It prints every problem as FILE:LINE: FIELD:
WHAT, and exits 2 if there is any. Without FILE it checks the files every
other command reads: --config, else $SWARMKEY_CONFIG, else ` + defaultConfigPath + `.`,
		RunE: func(_ *cobra.Command, files []string) error {
			if len(files) == 0 {
				files = g.paths()
			}
			if err := config.ValidateFiles(files...); err != nil {
				return invalidConfig(err)
			}
			for _, f := range files {
				fmt.Fprintf(g.stdout, "%s: ok\n", f)
			}
			return nil
		},
	}
}

func newKeygenCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen PATH",
		Short: "Write a new key file for the file store (mode 0600; never overwrites)",
		Long: `keygen writes a new random key for the file store to PATH, mode 0600. It never
overwrites a key file. A missing folder is created, mode 0700 (only you can
list it), and keygen says so.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			created, err := ensureKeyFolder(args[0])
			if err != nil {
				return err
			}
			if created != "" {
				fmt.Fprintf(g.stdout, "created the folder %s (mode 0700)\n", termtext.Printable(created))
			}
			if err := file.GenerateKey(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote a new key to %s (mode 0600); back it up: without it the file store cannot be read\n", args[0])
			return nil
		},
	}
}

func newRotateCommand(g *globals) *cobra.Command {
	var local, force, wait, replace bool
	var many manyFlags
	cmd := &cobra.Command{
		Use:   "rotate NAME | --tag T… | --all",
		Short: "Rotate a policy's credential now",
		Long: `rotate asks the daemon to rotate the policy NAME now: it inserts a job through
PostgreSQL, so it needs only database access. It refuses while a Locust run
or a deny window blocks the policy, naming it and the next allowed slot,
unless --force (recorded in the audit log with the operator's name). --wait
follows the rotation step by step and exits with its outcome.

With --local it runs in this process instead (break-glass use when no daemon
runs) and prints each step as it completes, with its duration.

A rotation stops, changing nothing, when the secret's current version is not
a document its target can read (a bare password, a binary value, a JSON
object without the target's fields, another role's credential): swarmkey
does not overwrite what it cannot read. --replace-unreadable-current (with
--local only) replaces it anyway: the rotation goes on as if nothing were
current, and the audit log records rotation.adopted with your name and the
version replaced. The credential that version held is no longer managed (a
PostgreSQL role's password changes at the set step); with the single
strategy this needs the target's admin credential.

Emergency rotation: --tag T (repeatable) rotates every policy with the tag,
--all every policy, --concurrency at once (default 4), in this process with
--local or through the daemon (which rotates each as a request of yours and
is followed to its end, like --wait). Leases, runs and deny windows still
hold unless --force. A progress bar shows on a terminal, a line per policy
otherwise, and a summary table at the end names every policy that did not
rotate and why.

Exit codes: 0 rotated (or asked), 1 failed or refused (--tag/--all: some
policy did not rotate), 2 bad input (--tag/--all: also a policy that could not
start for bad input), 3 another rotation of NAME is in progress (--local).`,
		Args: cobra.MaximumNArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := many.check(cmd, args, replace); err != nil {
				return err
			}
			if replace && !local {
				return usageError("--replace-unreadable-current needs --local: replacing a version swarmkey cannot read is an operator's rotation in this process, never the daemon's")
			}
			return nil
		},
		RunE: g.withSession(func(cmd *cobra.Command, args []string, sess *app.Session) error {
			if many.selected() {
				return rotateMany(cmd.Context(), g, sess, many, local, force)
			}
			if !local {
				return rotateThroughDaemon(cmd.Context(), g, sess, args[0], force, wait)
			}
			ctx, db := cmd.Context(), sess.DB
			p, err := sess.Credential(ctx, args[0])
			if err != nil {
				return err
			}
			defer p.Target.Close()

			fmt.Fprintf(g.stdout, "rotating %s (%s, %s:%s)\n", p.Name, p.Strategy, p.Store.Name(), p.SecretID)
			res, err := rotator.New(db, rotator.Config{Logger: sess.Logger}).Rotate(ctx, p, rotator.Options{
				Actor:                    "operator:" + lease.OperatorName(),
				Force:                    force,
				ReplaceUnreadableCurrent: replace,
				OnStep: func(e rotator.StepEvent) {
					line := fmt.Sprintf("  %-8s %8s", e.Step, e.Duration.Round(time.Millisecond))
					if e.Principal != "" && e.Step == rotator.StepCreate {
						line += "  " + termtext.Printable(e.Principal)
					}
					if e.Note != "" {
						line += "  (" + termtext.Printable(e.Note) + ")"
					}
					fmt.Fprintln(g.stdout, line)
				},
			})
			var inProgress *rotator.InProgressError
			if errors.As(err, &inProgress) {
				return &exitError{code: exitInProgress, err: err}
			}
			var unreadable *rotator.UnreadableCurrentError
			switch {
			case errors.As(err, &unreadable):
				fmt.Fprintf(g.stdout, "rotation %s of %s stopped before it changed anything: its target cannot read the current version %s.\n"+
					"Fix that version, or replace it (audited with your name): swarmkey rotate %s --local --replace-unreadable-current\n",
					res.Token, p.Name, termtext.Printable(unreadable.Version), p.Name)
				return err
			case err != nil && res.RolledBack && res.Replaced != "":
				// Nothing could put back what the store held in a shape the
				// target cannot read.
				fmt.Fprintf(g.stdout, "rotation %s of %s failed and was rolled back: the unreadable version stays current, and what it held may no longer work\n", res.Token, p.Name)
				return err
			case err != nil:
				if res.RolledBack {
					fmt.Fprintf(g.stdout, "rotation %s of %s failed and was rolled back: the current credential is unchanged\n", res.Token, p.Name)
				}
				return err
			}
			resumed := ""
			if res.Resumed {
				resumed = " (resumed an unfinished rotation)"
			}
			if res.Replaced != "" {
				fmt.Fprintf(g.stdout, "replaced the unreadable current version %s (audited as rotation.adopted)\n", termtext.Printable(res.Replaced))
			}
			fmt.Fprintf(g.stdout, "rotated %s: %s is current (token %s)%s\n", p.Name, termtext.Printable(res.Principal), res.Token, resumed)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&local, "local", false, "run the rotation in this process (no daemon needed)")
	cmd.Flags().BoolVar(&force, "force", false, "rotate even if a Locust run blocks it (recorded in the audit log)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the daemon's rotation step by step and exit with its outcome")
	cmd.Flags().BoolVar(&replace, "replace-unreadable-current", false,
		"with --local: replace a current version the target cannot read (audited as rotation.adopted with your name)")
	many.register(cmd)
	return cmd
}

func newStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each policy: strategy, store, current version, age, last outcome",
		Args:  cobra.NoArgs,
		RunE: g.withSession(func(cmd *cobra.Command, _ []string, sess *app.Session) error {
			cfg, db := sess.Config, sess.DB
			states, err := db.PolicyStates(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "POLICY\tSTRATEGY\tSTORE\tCURRENT VERSION\tPRINCIPAL\tAGE\tLAST OUTCOME")
			for _, p := range cfg.Policies {
				s := states[p.Name]
				// What the state database holds came from stores and
				// targets: printable, like every field from outside.
				version, age, outcome := orDash(termtext.Printable(s.CurrentVersion)), "-", orDash(s.LastOutcome)
				if s.RotatedAt != nil {
					age = now.Sub(*s.RotatedAt).Round(time.Second).String()
				}
				if s.LastError != "" {
					outcome += ": " + termtext.Printable(s.LastError)
				}
				fmt.Fprintf(w, "%s\t%s\t%s:%s\t%s\t%s\t%s\t%s\n", p.Name, p.Strategy, p.Store, termtext.Printable(p.SecretID), version,
					orDash(termtext.Printable(s.Principal)), age, outcome)
			}
			return w.Flush()
		}),
	}
}

func newHistoryCommand(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "Show a policy's rotations, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: g.withSession(func(cmd *cobra.Command, args []string, sess *app.Session) error {
			cfg, db := sess.Config, sess.DB
			rows, err := db.History(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				if _, ok := cfg.Policy(args[0]); !ok {
					return usageError("unknown policy %q", args[0])
				}
				fmt.Fprintf(g.stdout, "%s has not rotated yet\n", args[0])
				return nil
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "STARTED\tTOKEN\tACTOR\tLAST STEP\tOUTCOME\tDURATION\tPRINCIPAL\tDETAIL")
			for _, r := range rows {
				duration := "-"
				if r.FinishedAt != nil {
					duration = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
				}
				detail := termtext.Printable(r.Error)
				if r.RolledBack {
					detail = "rolled back: " + detail
				}
				if r.Forced {
					detail = "forced " + detail
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cliTime(r.StartedAt), r.Token,
					termtext.Printable(r.Actor), orDash(r.Step), r.Outcome, duration, orDash(termtext.Printable(r.Principal)), detail)
			}
			return w.Flush()
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many rotations to show")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newVerifyCommand(g *globals) *cobra.Command {
	var stage string
	cmd := &cobra.Command{
		Use:   "verify NAME",
		Short: "Check that a stored credential logs in (its value is never printed)",
		Long: `verify reads the policy's secret at --stage (current by default) and runs the
target's canary with it: exit 0 when it logs in, 1 when it is refused, 2 when
no version holds the stage yet (nothing is current before the first rotation,
previous exists from the second rotation on, pending only during one) or the
input is wrong (an unknown policy, a reference that does not resolve).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st := providers.Stage(stage)
			if !slices.Contains(providers.Stages, st) {
				return usageError("--stage %q: use current, pending or previous", stage)
			}
			rt, err := g.openRuntime()
			if err != nil {
				return err
			}
			defer rt.Close()
			id, err := rt.Verify(cmd.Context(), args[0], st)
			var refused *app.RefusedError
			if errors.As(err, &refused) {
				fmt.Fprintf(g.stdout, "%s %s (version %s): refused\n", args[0], st, termtext.Printable(id))
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s %s (version %s): logs in\n", args[0], st, termtext.Printable(id))
			return nil
		},
	}
	cmd.Flags().StringVar(&stage, "stage", "current", "which version: current, pending or previous")
	return cmd
}
