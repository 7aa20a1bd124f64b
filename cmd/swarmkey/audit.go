package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/lease"
)

func newAuditCommand(g *globals) *cobra.Command {
	var q auditQueryFlags
	cmd := &cobra.Command{
		Use:   "audit [--policy P] [--actor A] [--kind K] [--since T] [--until T] [-o json] [-f]",
		Short: "Show the audit log: who did what to which policy, and who read which credential version",
		Long: `audit lists the entries of the audit log, oldest first: the newest --limit
(50; 0 for all) that the filters match. Each filter is repeatable and matches
any of its values:

  --policy NAME     entries about the policy
  --actor WHO       operator:alice, token:ci, daemon, run-due; a name without
                    a kind (alice) matches every kind (operator:alice, token:alice)
  --kind KIND       an action (rotation.forced) or every action of a kind
                    (rotation, credential, lease, run, token, audit)
  --since T         entries at or after T; --until T: entries before T
                    (RFC 3339, a date at midnight UTC, now, +2h or -1d)

Times are RFC 3339 in UTC, to the second. -o json writes one JSON object per
line, as audit export does. -f keeps following: entries appended after the
listing are printed as they arrive, until Ctrl-C.

audit reads lists who read which version of which credential, and when;
audit export writes old entries for retention (README.md, "Audit
retention"). Entries never hold a credential or a token.

Exit codes: 0 listed, 1 the database failed, 2 bad input.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for \"swarmkey audit\": use reads or export, or flags such as --policy", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := q.filter()
			if err != nil {
				return err
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			return listAudit(cmd.Context(), g, sess, q, filter)
		},
	}
	q.register(cmd)
	cmd.AddCommand(newAuditExportCommand(g), newAuditReadsCommand(g))
	return cmd
}

func newAuditExportCommand(g *globals) *cobra.Command {
	var before string
	cmd := &cobra.Command{
		Use:   "export --before T",
		Short: "Write every audit entry older than T to standard output, as JSON lines",
		Long: `export writes every entry of the audit log older than --before to standard
output, one JSON object per line, oldest first:

  {"id":…,"at":"…","actor":"…","policy":"…","rotation":"…","action":"…","detail":{…}}

(policy and rotation only when the entry has them). Entries never hold a
credential or a token, so neither does the export. T is RFC 3339, a date
(2026-01-01, midnight UTC), now, or relative to now (-90d); it must not be
in the future.

When every line is written, the export is recorded in the audit log as
audit.exported with your user name, T and the number of entries: a month can
be dropped (swarmkey_drop_audit_partition) only once an export covered it.

Exit codes: 0 exported, 1 the database or standard output failed (nothing is
recorded), 2 bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if before == "" {
				return usageError("--before is required: the entries older than it are exported (such as --before 2026-01-01)")
			}
			t, err := parseAuditTime("--before", before, time.Now().UTC())
			if err != nil {
				return err
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			n, err := sess.ExportAudit(cmd.Context(), t, g.stdout, "operator:"+lease.OperatorName())
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "exported %d audit entries older than %s; recorded as audit.exported\n", n, t.UTC().Format(time.RFC3339Nano))
			return nil
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "export the entries older than this time (required)")
	return cmd
}
