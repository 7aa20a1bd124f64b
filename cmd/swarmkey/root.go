package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/execcli"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/termtext"
)

// Exit codes, documented in README.md.
const (
	exitOK         = 0
	exitFailed     = 1 // the operation ran and failed (a rotation failed and was rolled back, …)
	exitUsage      = 2 // bad flags, an invalid config file, an unknown policy, an unresolvable reference: fix the input
	exitInProgress = 3 // another process is rotating the policy right now
)

// exitError carries the exit code a command chose.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// globals are the flags every command shares.
type globals struct {
	configPaths []string
	logLevel    string
	logFormat   string
	stdout      io.Writer
	stderr      io.Writer
}

const defaultConfigPath = "/etc/swarmkey/swarmkey.yaml"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "swarmkey",
		Short:         "Rotate the credentials that load tests use",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `swarmkey rotates the credentials that Locust load tests use: it generates a new
credential on the target (a PostgreSQL role, an HTTP service's API key, or a
generated shared token), writes it as a versioned secret (encrypted file
store, AWS Secrets Manager, GCP Secret Manager), proves it with a canary,
promotes it, and never rotates under a running test.`,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.PersistentFlags().StringArrayVarP(&g.configPaths, "config", "c", nil,
		"config file (repeatable; default $SWARMKEY_CONFIG or "+defaultConfigPath+")")
	// No flag default: serve logs at info, the one-shot commands at warn
	// (see logger), and the help must not claim one level for both.
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "",
		"log level: debug, info, warn, error (default info for serve, warn for the other commands)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})

	root.AddCommand(
		newMigrateCommand(g),
		newValidateCommand(g),
		newRotateCommand(g),
		newStatusCommand(g),
		newHistoryCommand(g),
		newKeygenCommand(g),
		newVerifyCommand(g),
		newServeCommand(g),
		newRunDueCommand(g),
		newPlanCommand(g),
		newRunsCommand(g),
		newExecCommand(g),
		newTokensCommand(g),
		newResolveCommand(g),
		newAuditCommand(g),
		newScanCommand(g), newImportCommand(g),
	)

	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	printError(stderr, err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var status *execcli.ExitStatus
	if errors.As(err, &status) {
		return status.Code
	}
	var input *app.InputError
	var leaseInput *lease.InputError
	if errors.As(err, &input) || errors.As(err, &leaseInput) {
		return exitUsage
	}
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") ||
		strings.Contains(err.Error(), "arg(s)") {
		return exitUsage
	}
	return exitFailed
}

func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if g.logLevel == "" {
		g.logLevel = "warn"
	}
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageError("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	}
	return nil, usageError("--log-format %q: use text or json", g.logFormat)
}

func (g *globals) paths() []string {
	if len(g.configPaths) > 0 {
		return g.configPaths
	}
	if env := os.Getenv("SWARMKEY_CONFIG"); env != "" {
		return strings.Split(env, string(os.PathListSeparator))
	}
	return []string{defaultConfigPath}
}

// loadConfig reads and checks the config; any problem is a usage error that
// lists every file:line it found.
func (g *globals) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(g.paths()...)
	if err != nil {
		return nil, invalidConfig(err)
	}
	return cfg, nil
}

// invalidConfig is the usage error of a config that did not load or
// validate: "invalid configuration:", then each problem on a line of its own
// (printError prints config.Errors so).
func invalidConfig(err error) error {
	var problems config.Errors
	if errors.As(err, &problems) {
		return &exitError{code: exitUsage, err: fmt.Errorf("invalid configuration:\n%w", err)}
	}
	return &exitError{code: exitUsage, err: fmt.Errorf("invalid configuration: %w", err)}
}

// printError prints err after "swarmkey: " on one line, printable: its text
// may quote a store, a target, an API or the database, and a newline in it
// must not pass for a line of swarmkey's. An invalid configuration is the
// exception: "invalid configuration:", then each problem printable on a line
// of its own, FILE:LINE: FIELD: WHAT at the start, for editors and grep.
func printError(w io.Writer, err error) {
	var problems config.Errors
	if errors.As(err, &problems) {
		fmt.Fprintln(w, "swarmkey: invalid configuration:")
		for _, p := range problems {
			fmt.Fprintln(w, termtext.Printable(p.Error()))
		}
		return
	}
	fmt.Fprintln(w, "swarmkey: "+termtext.Printable(err.Error()))
}

// openSession loads the config and opens the state database.
func (g *globals) openSession(ctx context.Context) (*app.Session, error) {
	rt, err := g.openRuntime()
	if err != nil {
		return nil, err
	}
	sess, err := app.Open(ctx, rt)
	if err != nil {
		rt.Close()
		return nil, err
	}
	return sess, nil
}

// openRuntime loads the config with a logger; no store or database is
// opened yet.
func (g *globals) openRuntime() (*app.Runtime, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	logger, err := g.logger()
	if err != nil {
		return nil, err
	}
	return app.NewRuntime(cfg, logger), nil
}

// withSession adapts a command body that needs a session: it opens one
// before the body runs and closes it after.
func (g *globals) withSession(body func(cmd *cobra.Command, args []string, sess *app.Session) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		sess, err := g.openSession(cmd.Context())
		if err != nil {
			return err
		}
		defer sess.Close()
		return body(cmd, args, sess)
	}
}
