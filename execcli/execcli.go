// Package execcli is the exec command: its flags, its help, and running
// COMMAND with policies' credentials in its environment under a lease. Two
// binaries build it: `swarmkey exec` reads the stores and the state
// database, or the runner API with --api; swarmkey-exec, the small binary
// for load generators, reads the runner API only. It links none of the
// stores, the targets or the state database, so it starts in a few
// milliseconds where swarmkey, which links them all, takes about twenty
// (docs/design.md, "Two binaries").
package execcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/swarmkey/swarmkey/api/wire"
	"github.com/swarmkey/swarmkey/lease"
	"github.com/swarmkey/swarmkey/termtext"
)

// OpenStores opens the policies' stores and the state database, for a run
// without --api. It returns the source and the variables the loaded
// configuration's env: references read, which COMMAND must not inherit.
type OpenStores func(ctx context.Context, policies []lease.Policy) (src lease.Source, referenced []string, err error)

// ExitStatus is exec's end when COMMAND ran and did not exit 0: Code is
// COMMAND's status, or 128+N when signal N killed it. The binary exits
// with Code.
type ExitStatus struct {
	Code int
	err  error
}

func (e *ExitStatus) Error() string { return e.err.Error() }

// ExitCode is the status a binary that runs only exec exits with: 0 for
// nil, COMMAND's status (ExitStatus), 2 when the input must change (an
// InputError: bad flags, an unknown policy, a refused token), else 1.
func ExitCode(err error) int {
	var status *ExitStatus
	var input *lease.InputError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &status):
		return status.Code
	case errors.As(err, &input):
		return 2
	}
	return 1
}

type options struct {
	policies  []string
	run       string
	leaseTTL  time.Duration
	envMap    []string
	apiURL    string
	tokenFile string
	passEnv   []string
	inherit   bool
}

const helpUsage = `--policy NAME[=PREFIX]… [--run NAME] [--lease-ttl D] [--env-map [POLICY:]FIELD=VAR…] [--pass-env VAR…] -- COMMAND [ARG…]`

const helpShort = "Run a command with the current credentials of policies in its environment, under a lease"

// helpBody is the help both binaries share; %[1]s is the command's name.
const helpBody = `%[1]s reads the current credential of each --policy and runs COMMAND with
the credential's fields as environment variables, while it holds a live lease
on those policies so that no rotation of them starts until COMMAND exits.

Variables: PREFIX_FIELD for every field of the secret document, such as
CHECKOUT_DB_USERNAME, CHECKOUT_DB_PASSWORD, CHECKOUT_DB_PORT, REPORTS_API_API_KEY.
PREFIX defaults to the policy name upper-cased with every character that is
not a letter or digit as _ (checkout-db: CHECKOUT_DB; a leading digit gets a
leading _); --policy NAME=PREFIX chooses it. Field names are upper-cased the
same way. A string field is passed as it is, a number or boolean as its JSON
text (5432, true), null as empty, an array or object as compact JSON.
--env-map FIELD=VAR names the variable of a field (of every policy that has
it), --env-map POLICY:FIELD=VAR of one policy's field; FIELD= leaves the
field out. Two fields that would set one variable are an error. It also
sets SWARMKEY_LEASE_ID (the lease) and SWARMKEY_POLICIES (NAME=PREFIX,…).

The values go to COMMAND's environment only: never to its arguments, to
swarmkey's output or logs, or to the audit log (which records each read:
who, which policy, which version).

%[2]s

Lease: taken before the credentials are read, renewed every --lease-ttl/3,
ended when COMMAND exits. If %[1]s itself dies, the lease expires
--lease-ttl after its last heartbeat, and rotations resume. If a heartbeat
finds the lease expired (the source was unreachable for longer than the
TTL), it warns and takes a new lease; COMMAND keeps the values it has.

Signals: SIGINT, SIGTERM and SIGHUP sent to %[1]s are passed to COMMAND. A
terminal's Ctrl-C already reaches COMMAND (same process group), so %[1]s
does not pass SIGINT on again while it runs in the terminal's foreground.

Exit status: COMMAND's own, or 128+N when a signal N killed it. Before
COMMAND starts, %[1]s fails with 2 when the input must change (bad flags,
an unknown policy, a token that is unknown, expired, revoked or not granted
the policy, a policy with no current credential yet, COMMAND not found) and
with 1 when something could not be reached or refused (%[3]s); the message
names which and why, and COMMAND does not run.`

// helpSourcesFull is the sources paragraph of `swarmkey exec`.
const helpSourcesFull = `COMMAND gets only what it needs of exec's own environment: exec withholds
swarmkey's own variables (every SWARMKEY_…, such as SWARMKEY_DATABASE_URL
and SWARMKEY_CONFIG, and the plugin's SWARMKEY_API and SWARMKEY_TOKEN) and
every variable an env: reference of the loaded configuration reads (the
database URL, target.postgres.admin, target.http.auth.secret, of every
policy: admin URLs and tokens COMMAND must not hold). With --api no
configuration is loaded, so only SWARMKEY_… are withheld. Everything else
(PATH, HOME, LOCUST_…, PYTHONPATH) is passed on unchanged, except the
variables exec sets. --pass-env VAR (repeatable) passes VAR on all the same,
such as --pass-env SWARMKEY_API --pass-env SWARMKEY_TOKEN_FILE for a
locustfile that reads other policies through the API; --inherit-env passes
the whole environment on.

Sources: by default exec reads each policy's store as the configuration
says, and takes the lease in the state database (so it needs the config, the
store's read access and the database). With --api URL (https://HOST:PORT,
http://127.0.0.1:PORT, unix:/run/swarmkey/swarmkey.sock) and --token-file
PATH (a runner token granted the policies, in a file only its owner may
read) it uses the HTTP API instead, for machines without database access.
swarmkey-exec does the same as exec --api and starts faster: on a load
generator, install it alone.`

// helpSourcesAPI is the sources paragraph of swarmkey-exec.
const helpSourcesAPI = `COMMAND gets swarmkey-exec's environment except swarmkey's own variables
(every SWARMKEY_…, such as the plugin's SWARMKEY_API and SWARMKEY_TOKEN) and
the variables it sets. --pass-env VAR (repeatable) passes VAR on all the
same; --inherit-env passes the whole environment on.

Source: the runner API of a swarmkey serve, at --api URL
(https://HOST:PORT, http://127.0.0.1:PORT, unix:/run/swarmkey/swarmkey.sock),
as the runner token in --token-file PATH (a token granted the policies, in a
file only its owner may read). Both are required: swarmkey-exec links no
store and no database client, which is why it starts in a few milliseconds.
It is 'swarmkey exec --api' for load generators, which need nothing else of
swarmkey; 'swarmkey exec' without --api reads the stores and the database.`

// Command returns the exec command. name is how its help and messages name
// it: "exec" (a subcommand of swarmkey) or "swarmkey-exec". openStores
// opens the stores and the database for a run without --api; with nil,
// --api and --token-file are required.
func Command(name string, stderr io.Writer, openStores OpenStores) *cobra.Command {
	var o options
	sources, failures := helpSourcesFull, "a store, the database, the API"
	if openStores == nil {
		sources, failures = helpSourcesAPI, "the API"
	}
	cmd := &cobra.Command{
		Use:   name + " " + helpUsage,
		Short: helpShort,
		Long:  fmt.Sprintf(helpBody, name, sources, failures),
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 || len(args) == 0 {
				return lease.Inputf("give the command after --: %s --policy NAME -- COMMAND [ARG…]", name)
			}
			return run(cmd.Context(), name, stderr, openStores, o, args)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.policies, "policy", nil, "a policy whose credential COMMAND gets, as NAME or NAME=PREFIX (repeatable)")
	f.StringVar(&o.run, "run", "", "the run's name in the lease (default exec:COMMAND@HOST)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", wire.DefaultLeaseTTL, "how long the lease outlives its last heartbeat (heartbeats every TTL/3)")
	f.StringArrayVar(&o.envMap, "env-map", nil, "[POLICY:]FIELD=VAR: the variable a field goes to; FIELD= leaves it out (repeatable)")
	if openStores == nil {
		f.StringVar(&o.apiURL, "api", "", "the runner API's URL (required)")
	} else {
		f.StringVar(&o.apiURL, "api", "", "read through the HTTP API at this URL instead of the stores and the database")
	}
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the runner token for --api (mode 0600 or 0400)")
	f.StringArrayVar(&o.passEnv, "pass-env", nil, "pass the variable `VAR` on to COMMAND although it would be withheld (repeatable)")
	if openStores == nil {
		f.BoolVar(&o.inherit, "inherit-env", false, "pass the whole environment on to COMMAND, swarmkey's variables included")
	} else {
		f.BoolVar(&o.inherit, "inherit-env", false, "pass exec's whole environment on to COMMAND, swarmkey's variables and those the config references included")
	}
	return cmd
}

func parseFlags(o options, apiOnly bool) ([]lease.Policy, []lease.Mapping, error) {
	policies, err := lease.ParsePolicies(o.policies)
	if err != nil {
		return nil, nil, err
	}
	maps, err := lease.ParseMappings(o.envMap, policies)
	if err != nil {
		return nil, nil, err
	}
	if o.leaseTTL < time.Second || o.leaseTTL > wire.MaxLeaseTTL {
		return nil, nil, lease.Inputf("--lease-ttl %s: give a duration from 1s to %s, such as 30s", o.leaseTTL, wire.MaxLeaseTTL)
	}
	if apiOnly && o.apiURL == "" {
		return nil, nil, lease.Inputf("--api and --token-file are required: swarmkey-exec reads through the runner API only (use `swarmkey exec` to read the stores and the database)")
	}
	if (o.apiURL == "") != (o.tokenFile == "") {
		return nil, nil, lease.Inputf("--api and --token-file go together: the API needs a runner token, and the token is for the API")
	}
	if _, err := lease.ParsePassEnv(o.passEnv); err != nil {
		return nil, nil, err
	}
	return policies, maps, nil
}

func run(ctx context.Context, name string, stderr io.Writer, openStores OpenStores, o options, command []string) error {
	policies, maps, err := parseFlags(o, openStores == nil)
	if err != nil {
		return err
	}
	path, err := exec.LookPath(command[0])
	if err != nil {
		return lease.Inputf("command %q: %v", command[0], errors.Unwrap(err))
	}
	var src lease.Source
	var referenced []string
	if o.apiURL != "" {
		src, err = openAPI(o)
	} else {
		src, referenced, err = openStores(ctx, policies)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	withhold := lease.Withhold{Referenced: referenced, Pass: o.passEnv, Nothing: o.inherit}

	host, _ := os.Hostname()
	req := lease.Request{Run: o.run, Uses: lease.Names(policies), TTL: o.leaseTTL,
		Holder: fmt.Sprintf("%s@%s:%d", lease.OperatorName(), host, os.Getpid())}
	if req.Run == "" {
		req.Run = "exec:" + filepath.Base(command[0]) + "@" + host
	}
	prefix := "swarmkey " + name + ": "
	if name != "exec" {
		prefix = name + ": "
	}
	// The lease first, then the reads: a rotation that starts after the
	// lease cannot replace what is read under it.
	// The warnings quote the database's or the API's errors.
	held, err := lease.Take(ctx, src, req, func(msg string) { fmt.Fprintln(stderr, prefix+termtext.Printable(msg)) })
	if err != nil {
		return err
	}
	env, err := held.ReadEnv(ctx, policies, maps)
	if err != nil {
		held.End()
		return err
	}

	child := exec.Command(path, command[1:]...)
	child.Args[0] = command[0]
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.Env = lease.ChildEnv(os.Environ(), withhold, env)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		held.End()
		return lease.Inputf("start %q: %v", command[0], err)
	}
	// From here on exec only relays: cancelling ctx (SIGINT/SIGTERM to
	// exec) must not stop the heartbeats while the child still runs.
	stopHeartbeats := held.Keep(context.WithoutCancel(ctx))
	waited := make(chan error, 1)
	go func() { waited <- child.Wait() }()
	foreground := inTerminalForeground()
	var waitErr error
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGINT && foreground {
				continue // the terminal sent it to the child as well
			}
			_ = child.Process.Signal(sig)
		case waitErr = <-waited:
			break wait
		}
	}
	stopHeartbeats()
	held.End()
	return childStatus(command[0], child.ProcessState, waitErr)
}

// openAPI opens the runner API of --api as the token of --token-file.
func openAPI(o options) (lease.Source, error) {
	token, err := lease.ReadTokenFile(o.tokenFile)
	if err != nil {
		return nil, err
	}
	src, err := lease.NewAPISource(o.apiURL, token)
	if err != nil {
		return nil, err // not src: a nil *APISource is a non-nil Source
	}
	return src, nil
}

// inTerminalForeground reports whether exec runs in the foreground process
// group of the terminal on its stdin: then a Ctrl-C reaches the child too.
func inTerminalForeground() bool {
	pgrp, err := unix.IoctlGetInt(int(os.Stdin.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// childStatus turns the child's end into exec's: nil for status 0, else an
// ExitStatus with the child's status, or 128+N for signal N.
func childStatus(name string, ps *os.ProcessState, waitErr error) error {
	if ps == nil {
		return fmt.Errorf("wait for %q: %w", name, waitErr)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &ExitStatus{Code: 128 + int(ws.Signal()), err: fmt.Errorf("exec: %s was killed by signal %d (%s)", name, int(ws.Signal()), ws.Signal())}
	}
	if code := ps.ExitCode(); code != 0 {
		return &ExitStatus{Code: code, err: fmt.Errorf("exec: %s exited with status %d", name, code)}
	}
	return nil
}
