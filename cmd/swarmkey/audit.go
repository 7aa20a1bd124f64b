package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newAuditCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Export the audit log",
		Long: `The audit log (audit_log) is append-only and partitioned by month. Old
months are kept until they are exported (audit export) and then dropped by a
database role the operator grants swarmkey_drop_audit_partition to (see
README.md, "Audit retention").`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for \"swarmkey audit\": use export", args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newAuditExportCommand(g))
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
			t, err := time.Parse(time.DateOnly, before)
			if err != nil {
				if t, err = parseWhen("--before", before, time.Now().UTC()); err != nil {
					return usageError("--before %q: use a date (2026-01-01), RFC 3339 (2026-01-01T00:00:00Z), now, or -DURATION (-90d)", before)
				}
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			n, err := sess.ExportAudit(cmd.Context(), t, g.stdout, "operator:"+operatorName())
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
