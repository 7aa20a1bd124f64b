package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/execcli"
	"github.com/swarmkey/swarmkey/lease"
)

// newExecCommand is package execcli's exec command, which swarmkey-exec
// builds too, with the source only this binary links: the policies' stores
// and the state database, for a run without --api.
func newExecCommand(g *globals) *cobra.Command {
	return execcli.Command("exec", g.stderr, func(ctx context.Context, policies []lease.Policy) (lease.Source, []string, error) {
		rt, err := g.openRuntime()
		if err != nil {
			return nil, nil, err
		}
		src, err := rt.LeaseSource(ctx, lease.Names(policies), "operator:"+lease.OperatorName())
		if err != nil {
			rt.Close()
			return nil, nil, err
		}
		return src, app.ReferencedEnv(rt.Config), nil
	})
}
