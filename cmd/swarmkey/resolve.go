package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/rotator"
)

func newResolveCommand(g *globals) *cobra.Command {
	var discard, promote bool
	cmd := &cobra.Command{
		Use:   "resolve NAME (--discard-pending | --promote-pending)",
		Short: "Discard or promote a pending version that a rotation refused",
		Long: `A rotation refuses a pending version that swarmkey did not write (another tool,
an AWS rotation Lambda, a copy of the secret) and changes nothing; resolve is
the operator's decision about it.

--discard-pending discards the pending version in the store, whoever wrote it.
The target is not touched.

--promote-pending first runs the policy's canary with the pending credential
and only if it passes promotes it, provided current is still the version it
read (compare-and-swap).

Either takes the policy's lock, refuses while a rotation of NAME is unfinished
(rotate resumes it) or while the store rotates the secret itself, and is
recorded in the audit log as rotation.resolved with the operator's name.

Exit codes: 0 done, 1 refused or failed (the canary refused the credential,
the policy is locked, the store could not be reached), 2 bad input (an unknown
policy, no pending version to resolve, both flags or neither).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if discard == promote {
				return usageError("resolve %s: give exactly one of --discard-pending and --promote-pending", args[0])
			}
			action := rotator.ResolveDiscard
			if promote {
				action = rotator.ResolvePromote
			}
			sess, err := g.openSession(cmd.Context())
			if err != nil {
				return err
			}
			defer sess.Close()
			res, err := sess.Resolve(cmd.Context(), args[0], action, "operator:"+lease.OperatorName())
			if err != nil {
				return err
			}
			return printResolution(g, args[0], res)
		},
	}
	cmd.Flags().BoolVar(&discard, "discard-pending", false, "discard the pending version")
	cmd.Flags().BoolVar(&promote, "promote-pending", false, "verify the pending credential with the canary, then promote it")
	return cmd
}

func printResolution(g *globals, name string, res rotator.Resolution) error {
	writer := "not written by swarmkey"
	if res.Owner != "" {
		writer = "written by rotation " + res.Owner
	}
	switch res.Action {
	case rotator.ResolvePromote:
		was := res.PreviousCurrent
		if was == "" {
			was = "none"
		}
		_, err := fmt.Fprintf(g.stdout, "promoted pending version %s of %s (%s) after its canary passed: %s is current (previous current: %s)\n",
			res.VersionID, name, writer, orDash(res.Principal), was)
		return err
	default:
		_, err := fmt.Fprintf(g.stdout, "discarded pending version %s of %s (%s); current is unchanged\n", res.VersionID, name, writer)
		return err
	}
}
