package postgres

import (
	"context"
	"strings"

	"github.com/swarmkey/swarmkey/targets"
)

// FactsSQL is the query every create and set starts with, for the test of
// its plan.
const FactsSQL = factsSQL

// FactsPlans reads the facts of the policy's roles n times on one admin
// connection, as a create and a set do, and returns how often that session
// planned factsSQL generically and how often for the call's values, and
// the plan (JSON) the session makes of it for those roles.
func FactsPlans(ctx context.Context, t *Target, strategy targets.Strategy, n int) (generic, custom int64, plan string, err error) {
	err = t.adminConn(ctx, func(s adminSession) error {
		for range n {
			if _, err := t.readFacts(ctx, s, strategy, t.opts.Username, t.opts.GroupRole); err != nil {
				return err
			}
		}
		if err := s.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`, factsSQL).
			Scan(&generic, &custom); err != nil {
			return err
		}
		if _, err := s.Exec(ctx, `PREPARE facts_check(text[], text, text) AS `+factsSQL); err != nil {
			return err
		}
		defer func() { _, _ = s.Exec(ctx, `DEALLOCATE facts_check`) }()
		roles := t.policyRoles(strategy)
		args := []string{}
		for _, r := range roles {
			args = append(args, quoteLiteral(r))
		}
		return s.QueryRow(ctx, `EXPLAIN (FORMAT JSON) EXECUTE facts_check(ARRAY[`+strings.Join(args, ", ")+`]::text[], `+
			quoteLiteral(t.opts.Username)+`, `+quoteLiteral(t.opts.GroupRole)+`)`).Scan(&plan)
	})
	return generic, custom, plan, err
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
