package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// Variables exec sets besides the credentials' fields, for the Locust
// plugin and for scripts: the lease it holds, and each policy with its
// prefix (name=PREFIX, comma-separated).
const (
	envLeaseID  = "SWARMKEY_LEASE_ID"
	envPolicies = "SWARMKEY_POLICIES"
)

type execOptions struct {
	policies  []string
	run       string
	leaseTTL  time.Duration
	envMap    []string
	apiURL    string
	tokenFile string
}

func newExecCommand(g *globals) *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:   "exec --policy NAME[=PREFIX]… [--run NAME] [--lease-ttl D] [--env-map [POLICY:]FIELD=VAR…] -- COMMAND [ARG…]",
		Short: "Run a command with the current credentials of policies in its environment, under a lease",
		Long: `exec reads the current credential of each --policy and runs COMMAND with the
credential's fields as environment variables, while it holds a live lease on
those policies so that no rotation of them starts until COMMAND exits.

Variables: PREFIX_FIELD for every field of the secret document, such as
CHECKOUT_DB_USERNAME, CHECKOUT_DB_PASSWORD, CHECKOUT_DB_PORT, REPORTS_API_API_KEY.
PREFIX defaults to the policy name upper-cased with every character that is
not a letter or digit as _ (checkout-db: CHECKOUT_DB; a leading digit gets a
leading _); --policy NAME=PREFIX chooses it. Field names are upper-cased the
same way. A string field is passed as it is, a number or boolean as its JSON
text (5432, true), null as empty, an array or object as compact JSON.
--env-map FIELD=VAR names the variable of a field (of every policy that has
it), --env-map POLICY:FIELD=VAR of one policy's field; FIELD= leaves the
field out. Two fields that would set one variable are an error. exec also
sets SWARMKEY_LEASE_ID (the lease) and SWARMKEY_POLICIES (NAME=PREFIX,…).

The values go to COMMAND's environment only: never to its arguments, to
swarmkey's output or logs, or to the audit log (which records each read:
who, which policy, which version). Other variables of exec's environment
are passed on unchanged, except those exec sets.

Sources: by default exec reads each policy's store as the configuration
says, and takes the lease in the state database (so it needs the config, the
store's read access and the database). With --api URL (https://HOST:PORT,
http://127.0.0.1:PORT, unix:/run/swarmkey/swarmkey.sock) and --token-file
PATH (a runner token granted the policies, in a file only its owner may
read) it uses the HTTP API instead, for machines without database access.

Lease: taken before the credentials are read, renewed every --lease-ttl/3,
ended when COMMAND exits. If exec itself dies, the lease expires --lease-ttl
after its last heartbeat, and rotations resume. If a heartbeat finds the
lease expired (the database or API was unreachable for longer than the TTL),
exec warns and takes a new lease; COMMAND keeps the values it has.

Signals: SIGINT, SIGTERM and SIGHUP sent to exec are passed to COMMAND. A
terminal's Ctrl-C already reaches COMMAND (same process group), so exec does
not pass SIGINT on again while it runs in the terminal's foreground.

Exit status: COMMAND's own, or 128+N when a signal N killed it. Before
COMMAND starts, exec fails with 2 when the input must change (bad flags, an
unknown policy, a token that is unknown, expired, revoked or not granted the
policy, a policy with no current credential yet, COMMAND not found) and with
1 when something could not be reached or refused (a store, the database, the
API); the message names which and why, and COMMAND does not run.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 || len(args) == 0 {
				return usageError("give the command after --: swarmkey exec --policy NAME -- COMMAND [ARG…]")
			}
			return runExec(cmd.Context(), g, o, args)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.policies, "policy", nil, "a policy whose credential COMMAND gets, as NAME or NAME=PREFIX (repeatable)")
	f.StringVar(&o.run, "run", "", "the run's name in the lease (default exec:COMMAND@HOST)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", api.DefaultLeaseTTL, "how long the lease outlives its last heartbeat (heartbeats every TTL/3)")
	f.StringArrayVar(&o.envMap, "env-map", nil, "[POLICY:]FIELD=VAR: the variable a field goes to; FIELD= leaves it out (repeatable)")
	f.StringVar(&o.apiURL, "api", "", "read through the HTTP API at this URL instead of the stores and the database")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the runner token for --api (mode 0600 or 0400)")
	return cmd
}

// policySpec is one --policy.
type policySpec struct {
	name, prefix string
}

// envMapping is one --env-map; policy "" means every policy.
type envMapping struct {
	policy, field, variable string
	used                    bool
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envName turns a policy or field name into the part of a variable name
// it stands for: upper case, every character but A-Z and 0-9 as _, and a
// leading _ before a digit.
func envName(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

func parseExecFlags(o execOptions) ([]policySpec, []*envMapping, error) {
	if len(o.policies) == 0 {
		return nil, nil, usageError("--policy is required: the policies whose credentials the command gets")
	}
	var specs []policySpec
	for _, p := range o.policies {
		name, prefix, hasPrefix := strings.Cut(p, "=")
		if name == "" {
			return nil, nil, usageError("--policy %q: give a policy name, as NAME or NAME=PREFIX", p)
		}
		if !hasPrefix {
			prefix = envName(name)
		} else if !envNameRE.MatchString(prefix) {
			return nil, nil, usageError("--policy %q: the prefix %q is not a variable name: use letters, digits and _, not starting with a digit", p, prefix)
		}
		if slices.ContainsFunc(specs, func(s policySpec) bool { return s.name == name }) {
			return nil, nil, usageError("--policy %q: the policy is given twice", p)
		}
		specs = append(specs, policySpec{name: name, prefix: prefix})
	}
	var maps []*envMapping
	for _, m := range o.envMap {
		lhs, variable, ok := strings.Cut(m, "=")
		if !ok || lhs == "" {
			return nil, nil, usageError("--env-map %q: use FIELD=VAR or POLICY:FIELD=VAR (FIELD= leaves the field out)", m)
		}
		if variable != "" && !envNameRE.MatchString(variable) {
			return nil, nil, usageError("--env-map %q: %q is not a variable name: use letters, digits and _, not starting with a digit", m, variable)
		}
		mp := &envMapping{field: lhs, variable: variable}
		if policy, field, qualified := strings.Cut(lhs, ":"); qualified {
			if !slices.ContainsFunc(specs, func(s policySpec) bool { return s.name == policy }) {
				return nil, nil, usageError("--env-map %q: policy %q is not one of the --policy flags", m, policy)
			}
			mp.policy, mp.field = policy, field
		}
		maps = append(maps, mp)
	}
	if o.leaseTTL < time.Second || o.leaseTTL > api.MaxLeaseTTL {
		return nil, nil, usageError("--lease-ttl %s: give a duration from 1s to %s, such as 30s", o.leaseTTL, api.MaxLeaseTTL)
	}
	if (o.apiURL == "") != (o.tokenFile == "") {
		return nil, nil, usageError("--api and --token-file go together: the API needs a runner token, and the token is for the API")
	}
	return specs, maps, nil
}

// credentialSource is where exec takes its lease and reads credentials:
// the stores and the database, or the HTTP API.
type credentialSource interface {
	startLease(ctx context.Context, run string, uses []string, holder string, ttl time.Duration) (string, error)
	// heartbeat returns errLeaseGone when the lease expired or ended.
	heartbeat(ctx context.Context, id string) error
	endLease(ctx context.Context, id string) error
	read(ctx context.Context, policy, leaseID, run string) (map[string]secret.Secret, error)
	close()
}

var errLeaseGone = errors.New("the lease expired or ended")

func runExec(ctx context.Context, g *globals, o execOptions, command []string) error {
	specs, maps, err := parseExecFlags(o)
	if err != nil {
		return err
	}
	path, err := exec.LookPath(command[0])
	if err != nil {
		return usageError("command %q: %v", command[0], errors.Unwrap(err))
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	var src credentialSource
	if o.apiURL != "" {
		src, err = openAPISource(o.apiURL, o.tokenFile)
	} else {
		src, err = openStoreSource(ctx, g, names)
	}
	if err != nil {
		return err
	}
	defer src.close()

	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s@%s:%d", operatorName(), host, os.Getpid())
	run := o.run
	if run == "" {
		run = "exec:" + filepath.Base(command[0]) + "@" + host
	}
	// The lease first, then the reads: a rotation that starts after the
	// lease cannot replace what is read under it.
	leaseID, err := src.startLease(ctx, run, names, holder, o.leaseTTL)
	if err != nil {
		return err
	}
	endLease := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := src.endLease(ctx, leaseID); err != nil {
			fmt.Fprintf(g.stderr, "swarmkey exec: warning: could not end lease %s (it expires by its TTL, %s): %v\n", leaseID, o.leaseTTL, err)
		}
	}
	env, err := readCredentials(ctx, src, specs, maps, leaseID, run)
	if err != nil {
		endLease()
		return err
	}

	child := exec.Command(path, command[1:]...)
	child.Args[0] = command[0]
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.Env = childEnv(os.Environ(), env)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		endLease()
		return usageError("start %q: %v", command[0], err)
	}
	// From here on exec only relays: cancelling ctx (SIGINT/SIGTERM to
	// exec) must not stop the heartbeats while the child still runs.
	hbCtx, stopHeartbeats := context.WithCancel(context.WithoutCancel(ctx))
	heartbeatsDone := make(chan struct{})
	leaseIDs := make(chan string, 1)
	go func() {
		defer close(heartbeatsDone)
		leaseIDs <- keepLease(hbCtx, g.stderr, src, leaseID, run, names, holder, o.leaseTTL)
	}()
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
	<-heartbeatsDone
	leaseID = <-leaseIDs
	endLease()
	return childStatus(command[0], child.ProcessState, waitErr)
}

// keepLease heartbeats every ttl/3 until ctx ends and returns the lease it
// holds then. A lease found expired or ended is replaced by a new one, with
// a warning: rotations may have run meanwhile.
func keepLease(ctx context.Context, stderr io.Writer, src credentialSource, id, run string, uses []string, holder string, ttl time.Duration) string {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return id
		case <-t.C:
		}
		err := src.heartbeat(ctx, id)
		if errors.Is(err, errLeaseGone) {
			newID, startErr := src.startLease(ctx, run, uses, holder, ttl)
			if startErr == nil {
				fmt.Fprintf(stderr, "swarmkey exec: warning: lease %s expired (no heartbeat got through within %s), so rotations may have run and the command may hold an old credential; took lease %s\n",
					id, ttl, newID)
				id, failing = newID, false
				continue
			}
			err = startErr
		}
		if err != nil {
			if ctx.Err() != nil {
				return id
			}
			if !failing {
				fmt.Fprintf(stderr, "swarmkey exec: warning: heartbeat of lease %s failed (retrying every %s; the lease expires %s after the last success): %v\n",
					id, ttl/3, ttl, err)
			}
			failing = true
			continue
		}
		if failing {
			fmt.Fprintf(stderr, "swarmkey exec: lease %s heartbeats again\n", id)
		}
		failing = false
	}
}

// inTerminalForeground reports whether exec runs in the foreground process
// group of the terminal on its stdin: then a Ctrl-C reaches the child too.
func inTerminalForeground() bool {
	pgrp, err := unix.IoctlGetInt(int(os.Stdin.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// childStatus turns the child's end into exec's exit: nil for status 0,
// else an exitError with the child's status, or 128+N for signal N.
func childStatus(name string, ps *os.ProcessState, waitErr error) error {
	if ps == nil {
		return fmt.Errorf("wait for %q: %w", name, waitErr)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &exitError{code: 128 + int(ws.Signal()), err: fmt.Errorf("exec: %s was killed by signal %d (%s)", name, int(ws.Signal()), ws.Signal())}
	}
	if code := ps.ExitCode(); code != 0 {
		return &exitError{code: code, err: fmt.Errorf("exec: %s exited with status %d", name, code)}
	}
	return nil
}

// readCredentials reads every policy and returns the variables to set.
func readCredentials(ctx context.Context, src credentialSource, specs []policySpec, maps []*envMapping, leaseID, run string) (map[string]secret.Secret, error) {
	env := map[string]secret.Secret{envLeaseID: secret.FromString(leaseID)}
	from := map[string]string{envLeaseID: "exec itself", envPolicies: "exec itself"}
	var listed []string
	for _, s := range specs {
		fields, err := src.read(ctx, s.name, leaseID, run)
		if err != nil {
			return nil, err
		}
		listed = append(listed, s.name+"="+s.prefix)
		names := make([]string, 0, len(fields))
		for f := range fields {
			names = append(names, f)
		}
		sort.Strings(names)
		for _, f := range names {
			variable := s.prefix + "_" + envName(f)
			for _, m := range maps {
				if m.field == f && (m.policy == "" || m.policy == s.name) {
					variable, m.used = m.variable, true
				}
			}
			if variable == "" {
				continue
			}
			source := fmt.Sprintf("field %q of policy %q", f, s.name)
			if other, taken := from[variable]; taken {
				return nil, usageError("%s and %s would both set %s: choose another prefix (--policy NAME=PREFIX) or --env-map", other, source, variable)
			}
			from[variable] = source
			env[variable] = fields[f]
		}
	}
	for _, m := range maps {
		if !m.used {
			return nil, usageError("--env-map: no policy given has a field %q%s", m.field, map[bool]string{true: " (policy " + m.policy + ")"}[m.policy != ""])
		}
	}
	env[envPolicies] = secret.FromString(strings.Join(listed, ","))
	return env, nil
}

// childEnv is base without the variables exec sets, then those.
func childEnv(base []string, set map[string]secret.Secret) []string {
	out := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ours := set[name]; !ours {
			out = append(out, kv)
		}
	}
	for name, v := range set {
		// The one place the values leave swarmkey: the child's environment.
		out = append(out, name+"="+v.RevealString())
	}
	return out
}

// storeSource reads the stores the configuration names and leases in the
// state database.
type storeSource struct {
	sess *app.Session
}

func openStoreSource(ctx context.Context, g *globals, names []string) (*storeSource, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	var policies []*config.Policy
	for _, n := range names {
		p, ok := cfg.Policy(n)
		if !ok {
			known := make([]string, len(cfg.Policies))
			for i, p := range cfg.Policies {
				known[i] = p.Name
			}
			return nil, usageError("--policy %q: unknown policy: the configuration (%s) has %s", n, strings.Join(cfg.Files, ", "), app.ListSome(known))
		}
		policies = append(policies, p)
	}
	logger, err := g.logger()
	if err != nil {
		return nil, err
	}
	rt := app.NewRuntime(cfg, logger)
	// The stores before the database: a store that refuses (a key file
	// others may read, missing permissions) is the first thing to report.
	for _, p := range policies {
		if _, err := rt.Store(ctx, p.Store); err != nil {
			rt.Close()
			return nil, fmt.Errorf("policy %q (%s:%d): %w", p.Name, p.File, p.Line, err)
		}
	}
	sess, err := app.Open(ctx, rt)
	if err != nil {
		rt.Close()
		return nil, err
	}
	return &storeSource{sess: sess}, nil
}

func (s *storeSource) close() { s.sess.Close() }

func (s *storeSource) startLease(ctx context.Context, run string, uses []string, holder string, ttl time.Duration) (string, error) {
	l, err := s.sess.DB.StartLease(ctx, state.LeaseRequest{RunName: run, Uses: uses, Holder: holder, TTL: ttl})
	var inv *state.InvalidRunError
	if errors.As(err, &inv) {
		return "", usageError("--%s %q: %s", map[string]string{"name": "run", "ttl": "lease-ttl"}[inv.Field], inv.Value, inv.Reason)
	}
	if err != nil {
		return "", fmt.Errorf("take the lease in the state database: %w", err)
	}
	return l.ID, nil
}

func (s *storeSource) heartbeat(ctx context.Context, id string) error {
	_, err := s.sess.DB.HeartbeatLease(ctx, id)
	if errors.Is(err, state.ErrLeaseExpired) || errors.Is(err, state.ErrLeaseEnded) {
		return fmt.Errorf("%w: %w", errLeaseGone, err)
	}
	return err
}

func (s *storeSource) endLease(ctx context.Context, id string) error {
	_, err := s.sess.DB.EndLease(ctx, id)
	return err
}

func (s *storeSource) read(ctx context.Context, name, leaseID, run string) (map[string]secret.Secret, error) {
	p, _ := s.sess.Config.Policy(name)
	st, err := s.sess.Store(ctx, p.Store)
	if err != nil {
		return nil, err
	}
	v, err := api.ReadCurrent(ctx, st, p.SecretID)
	if errors.Is(err, api.ErrNothingCurrent) {
		return nil, usageError("policy %q: no current credential yet in store %q (secret %q): it has not been rotated; rotate it first (`swarmkey rotate %s`)",
			name, p.Store, p.SecretID, name)
	}
	if err != nil {
		return nil, fmt.Errorf("policy %q: %w", name, err)
	}
	fields, err := api.Fields(v.Value)
	if err != nil {
		return nil, fmt.Errorf("policy %q: %w", name, err)
	}
	if err := s.sess.DB.AppendAudit(ctx, state.AuditEntry{
		Actor: "operator:" + operatorName(), Policy: name, Action: "credential.read",
		Detail: map[string]any{"version": v.ID, "via": "exec", "lease": leaseID, "run": run},
	}); err != nil {
		return nil, fmt.Errorf("policy %q: the read could not be audited, so the command does not start: %w", name, err)
	}
	return fields, nil
}

// apiSource goes through the HTTP API.
type apiSource struct {
	client *api.Client
	url    string
}

func openAPISource(url, tokenFile string) (*apiSource, error) {
	token, err := readTokenFile(tokenFile)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(url, token)
	if err != nil {
		return nil, usageError("--api %v", err)
	}
	return &apiSource{client: c, url: url}, nil
}

// readTokenFile reads a token from a file that only its owner may access,
// as the file store's key file: a token readable by others is no secret.
func readTokenFile(path string) (secret.Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return secret.Secret{}, usageError("--token-file %s: %v", path, errors.Unwrap(err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return secret.Secret{}, usageError("--token-file %s: %v", path, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return secret.Secret{}, usageError("--token-file %s has mode %04o, which lets group or others read the token; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return secret.Secret{}, usageError("--token-file %s: %v", path, err)
	}
	token := secret.New([]byte(strings.TrimSpace(string(data))))
	if token.IsZero() {
		return secret.Secret{}, usageError("--token-file %s is empty: put the token `swarmkey tokens add` printed in it", path)
	}
	return token, nil
}

func (s *apiSource) close() {}

// apiError classifies an API failure: an answer 4xx means the input must
// change (exit 2), anything else (no answer, 5xx) exit 1.
func (s *apiSource) apiError(what string, err error) error {
	var e *api.Error
	if errors.As(err, &e) && e.Status/100 == 4 {
		return usageError("API %s: %s: %s", s.url, what, e.Message)
	}
	return fmt.Errorf("API %s: %s: %w", s.url, what, err)
}

func (s *apiSource) startLease(ctx context.Context, run string, uses []string, holder string, ttl time.Duration) (string, error) {
	l, err := s.client.StartLease(ctx, run, uses, holder, ttl)
	if err != nil {
		return "", s.apiError("take the lease", err)
	}
	return l.ID, nil
}

func (s *apiSource) heartbeat(ctx context.Context, id string) error {
	_, err := s.client.Heartbeat(ctx, id)
	var e *api.Error
	if errors.As(err, &e) && e.Status == 410 {
		return fmt.Errorf("%w: %w", errLeaseGone, err)
	}
	return err
}

func (s *apiSource) endLease(ctx context.Context, id string) error {
	return s.client.EndLease(ctx, id)
}

func (s *apiSource) read(ctx context.Context, name, _, _ string) (map[string]secret.Secret, error) {
	c, err := s.client.Credential(ctx, name)
	if err != nil {
		return nil, s.apiError(fmt.Sprintf("read policy %q", name), err)
	}
	return c.Fields, nil
}
