// Command swarmkey-exec runs a command with policies' current credentials
// in its environment, read through the runner API of a swarmkey serve,
// under a lease: `swarmkey exec --api` as a binary of its own, for load
// generators. It links only package execcli and the API's client, none of
// the stores, targets or database clients, so it starts in a few
// milliseconds (docs/design.md, "Two binaries").
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/execcli"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/termtext"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := execcli.Command("swarmkey-exec", stderr, nil)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetArgs(args)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &lease.InputError{Err: err}
	})
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "swarmkey-exec: "+termtext.Printable(err.Error()))
	}
	return execcli.ExitCode(err)
}
