// Command swarmkey rotates the credentials that load tests use.
//
// main wires the commands and exits with the code the command chose; the
// logic lives in the packages (docs/design.md, "Layout and why").
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
