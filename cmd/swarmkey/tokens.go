package main

import (
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

func newTokensCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Add, list and revoke the bearer tokens of the HTTP API",
		Long: `tokens manages the API's bearer tokens in the state database. The database
keeps only a SHA-256 hash of each token: a token is printed once, by add, and
cannot be shown again (revoke it and add another if it is lost).

Scopes: a runner token may take, heartbeat and end leases on, and read the
current credential of, the policies it is granted (--grant NAME, or
--grant tag:NAME for every policy with that tag, now or later), and nothing
else; an admin token may read /metrics and reads no credential.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for \"swarmkey tokens\": use add, list or revoke", args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newTokensAddCommand(g), newTokensListCommand(g), newTokensRevokeCommand(g))
	return cmd
}

func newTokensAddCommand(g *globals) *cobra.Command {
	var name, scope, ttl string
	var grants []string
	cmd := &cobra.Command{
		Use:   "add --name N --scope runner --grant P… [--ttl 30d]",
		Short: "Create a token and print it once",
		Long: `add creates a token and prints it on standard output, alone on one line, so
that it can be redirected into a file (umask 077) or a secret manager; it is
the only time the token is shown, and nothing else swarmkey prints contains
it. What was created is described on standard error.

--scope runner needs at least one --grant: a policy name, or tag:NAME. Each
must exist in the loaded configuration. --scope admin takes no grant. --ttl
(such as 12h, 30d) makes the token expire; without it the token is valid
until revoked. The addition is recorded in the audit log with your user name.

Exit codes: 0 added, 2 bad input (nothing is written).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var d time.Duration
			if ttl != "" {
				var err error
				if d, err = config.ParseDuration(ttl); err != nil || d <= 0 {
					return usageError("--ttl %q: give a positive duration such as 12h or 30d, or leave it out for a token that does not expire", ttl)
				}
			}
			switch state.TokenScope(scope) {
			case state.ScopeRunner:
				if len(grants) == 0 {
					return usageError("--grant is required for a runner token: the policies (or tag:NAME) it may read")
				}
			case state.ScopeAdmin:
				if len(grants) > 0 {
					return usageError("--grant: an admin token reads no credential, so it takes no grant; use --scope runner to read policies")
				}
			default:
				return usageError("--scope %q: use runner or admin", scope)
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			row, token, err := sess.AddToken(cmd.Context(), state.TokenRequest{Name: name, Scope: state.TokenScope(scope), Grants: grants,
				TTL: d, CreatedBy: "operator:" + lease.OperatorName()})
			var inv *state.InvalidRunError
			switch {
			case errors.As(err, &inv):
				return usageError("--%s %q: %s", inv.Field, inv.Value, inv.Reason)
			case errors.Is(err, state.ErrTokenExists):
				return usageError("--name %q: an active token already has this name: revoke it first (`swarmkey tokens revoke %s`) or pick another name", name, name)
			case err != nil:
				return err
			}
			fmt.Fprintln(g.stdout, token.RevealString())
			fmt.Fprintf(g.stderr, "added %s token %q%s, expires %s: the line above is the token, shown only now\n",
				row.Scope, row.Name, grantsText(row.Grants), expiryText(row.ExpiresAt))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the token's name (required), shown in the audit log as token:NAME")
	cmd.Flags().StringVar(&scope, "scope", "", "runner or admin (required)")
	cmd.Flags().StringSliceVar(&grants, "grant", nil, "a policy or tag:NAME the runner may read (repeatable, or comma-separated)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "how long the token is valid (such as 12h or 30d); default: until revoked")
	return cmd
}

func grantsText(grants []string) string {
	if len(grants) == 0 {
		return ""
	}
	return " granted " + strings.Join(grants, ", ")
}

func expiryText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return cliTime(*t)
}

func newTokensListCommand(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list [--all]",
		Short: "List the tokens (never the tokens themselves)",
		Long: `list shows each token's name, scope, grants, creation, expiry and state
(active, expired, revoked). The database holds no token, so none is shown.
--all includes revoked tokens.`,
		Args: cobra.NoArgs,
		RunE: g.withSession(func(cmd *cobra.Command, _ []string, sess *app.Session) error {
			tokens, err := sess.DB.ListTokens(cmd.Context(), all)
			if err != nil {
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tGRANTS\tCREATED\tBY\tEXPIRES\tSTATE")
			for _, t := range tokens {
				state := "active"
				switch {
				case t.RevokedAt != nil:
					state = "revoked " + cliTime(*t.RevokedAt) + " by " + t.RevokedBy
				case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
					state = "expired"
				}
				grants := strings.Join(t.Grants, ",")
				if grants == "" {
					grants = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Scope, grants,
					cliTime(t.CreatedAt), t.CreatedBy, expiryText(t.ExpiresAt), state)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&all, "all", false, "include revoked tokens")
	return cmd
}

func newTokensRevokeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: it is refused from the next request on",
		Long: `revoke revokes the active token called NAME. Requests with it are refused
(401, saying it was revoked) from then on; leases it took stay until they are
ended or expire by their TTL. The row stays for the record, and the name may
be reused. The revocation is recorded in the audit log with your user name.

Exit codes: 0 revoked, 2 no active token has the name.`,
		Args: cobra.ExactArgs(1),
		RunE: g.withSession(func(cmd *cobra.Command, args []string, sess *app.Session) error {
			t, err := sess.RevokeToken(cmd.Context(), args[0], "operator:"+lease.OperatorName())
			if errors.Is(err, state.ErrNotFound) {
				return usageError("no active token is called %q: `swarmkey tokens list` shows them", args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "revoked token %q: it is refused from now on\n", t.Name)
			return nil
		}),
	}
}
