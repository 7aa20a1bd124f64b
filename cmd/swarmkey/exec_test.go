package main_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// execProcess is a `swarmkey exec` started in the background.
type execProcess struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	code           int
}

func (c *cli) startExec(t *testing.T, args ...string) *execProcess {
	t.Helper()
	p := &execProcess{cmd: c.command(append([]string{"exec"}, args...)...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
			if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
				p.code = -int(ws.Signal())
			}
		}
		close(p.done)
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

// wait waits for exec to exit and records what it printed for leak checks.
func (p *execProcess) wait(t *testing.T, c *cli) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("swarmkey exec did not exit; stderr:\n%s", p.stderr.String())
	}
	c.mu.Lock()
	c.printed.WriteString(p.stdout.String() + p.stderr.String())
	c.mu.Unlock()
	return p.code
}

func waitForFile(t *testing.T, path string) string {
	t.Helper()
	var data []byte
	require.Eventually(t, func() bool {
		var err error
		data, err = os.ReadFile(path)
		return err == nil && len(data) > 0 && bytes.HasSuffix(data, []byte("\n"))
	}, 60*time.Second, 20*time.Millisecond, "%s is written", path)
	return strings.TrimSpace(string(data))
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	env := map[string]string{}
	for _, kv := range strings.Split(string(data), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

func liveLeases(t *testing.T, db *testState) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT id::text FROM leases WHERE ended_at IS NULL`)
	require.NoError(t, err)
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

// childScript writes what the child sees (its environment, its and its
// parent's command lines), says it started, waits for the test to release
// it, then exits with status 7.
const childScript = `cat /proc/self/environ > child.env
cat /proc/$$/cmdline > child.cmdline
echo $PPID > parent.pid
echo $$ > started
while [ ! -f release ]; do sleep 0.02; done
exit 7`

func TestExecGivesTheChildTheValuesAndNothingElseDoes(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	current, ok := c.stage("current")
	require.True(t, ok)
	db := c.stateDB(t)

	p := c.startExec(t, "--policy", "checkout-db", "--run", "soak-42", "--", "sh", "-c", childScript)
	childPID := waitForFile(t, filepath.Join(c.dir, "started"))

	env := readEnvFile(t, filepath.Join(c.dir, "child.env"))
	require.Equal(t, current.Password, env["CHECKOUT_DB_PASSWORD"])
	require.Equal(t, current.Username, env["CHECKOUT_DB_USERNAME"])
	_, port := pgtest.LoginHost(t)
	require.Equal(t, strconv.Itoa(port), env["CHECKOUT_DB_PORT"], "a number as its JSON text")
	require.Equal(t, "postgres", env["CHECKOUT_DB_ENGINE"])
	require.Equal(t, "checkout-db=CHECKOUT_DB", env["SWARMKEY_POLICIES"])
	require.NotEmpty(t, env["SWARMKEY_LEASE_ID"])
	requireUnset(t, env, "SWARMKEY_DATABASE_URL")

	// The process list: neither swarmkey's nor the child's command line
	// holds a value, and swarmkey's own environment does not either.
	execPID := strconv.Itoa(p.cmd.Process.Pid)
	require.Equal(t, execPID, waitForFile(t, filepath.Join(c.dir, "parent.pid")), "exec is the child's parent")
	for _, f := range []string{"/proc/" + execPID + "/cmdline", "/proc/" + childPID + "/cmdline", "/proc/" + execPID + "/environ"} {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NotContains(t, string(data), current.Password, f)
	}

	// A live lease while the child runs, on the policy, with the run's name.
	leases := liveLeases(t, db)
	require.Equal(t, []string{env["SWARMKEY_LEASE_ID"]}, leases)
	busy, err := db.Calendar(context.Background(), time.Now(), nil)
	require.NoError(t, err)
	require.Len(t, busy.Leases, 1)
	require.Equal(t, "soak-42", busy.Leases[0].Name)
	require.Equal(t, []string{"checkout-db"}, busy.Leases[0].Policies)
	require.Nil(t, busy.Leases[0].Ended)

	c.write(filepath.Join(c.dir, "release"), "")
	require.Equal(t, 7, p.wait(t, c), "exec exits with the child's status")
	require.Empty(t, liveLeases(t, db), "the lease ended with the child")
	require.Empty(t, p.stdout.String(), "exec prints nothing on stdout")

	// Every read is audited: who, which policy, which version; never the value.
	entries, err := db.Audit(context.Background(), "checkout-db", 100)
	require.NoError(t, err)
	var read *state.AuditEntry
	for i := range entries {
		if entries[i].Action == "credential.read" {
			read = &entries[i]
		}
	}
	require.NotNil(t, read)
	require.Equal(t, "operator:"+currentUser(t), read.Actor)
	require.Equal(t, env["SWARMKEY_LEASE_ID"], read.Detail["lease"])
	require.NotEmpty(t, read.Detail["version"])
	requireAuditClean(t, db, current.Password)

	// A chosen prefix, a mapped field and a dropped one.
	require.NoError(t, os.Remove(filepath.Join(c.dir, "release")))
	r = c.run("exec", "--policy", "checkout-db=PG", "--env-map", "password=PGPASSWORD", "--env-map", "checkout-db:host=",
		"--", "sh", "-c", "cat /proc/self/environ > mapped.env")
	require.Equal(t, 0, r.code, r.stderr)
	env = readEnvFile(t, filepath.Join(c.dir, "mapped.env"))
	require.Equal(t, current.Password, env["PGPASSWORD"])
	require.Equal(t, current.Username, env["PG_USERNAME"])
	require.NotContains(t, env, "PG_PASSWORD")
	require.NotContains(t, env, "PG_HOST")

	r = c.run("exec", "--policy", "checkout-db", "--env-map", "username=CHECKOUT_DB_PASSWORD", "--", "true")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "would both set CHECKOUT_DB_PASSWORD")
	r = c.run("exec", "--policy", "checkout-db", "--env-map", "nosuchfield=X", "--", "true")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `no policy given has a field "nosuchfield"`)
	require.Empty(t, liveLeases(t, db), "refusals leave no live lease")
	c.requireNoLeak(current.Password)
}

// exec withholds swarmkey's own variables and those the config references;
// --pass-env and --inherit-env give them back; the rest passes.
func TestExecWithholdsSwarmkeysAndReferencedVariables(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	current, ok := c.stage("current")
	require.True(t, ok)
	c.env = append(c.env, "HOME="+c.dir, "PATH="+os.Getenv("PATH"), "LOCUST_HOST=https://staging.example.com", "LOCUST_USERS=50",
		"SWARMKEY_API=unix:/run/swarmkey/swarmkey.sock", "PG_ADMIN_URL_SUFFIXED=unrelated")

	childEnv := func(name string, flags ...string) map[string]string {
		t.Helper()
		args := append([]string{"exec", "--policy", "checkout-db"}, flags...)
		r := c.run(append(args, "--", "sh", "-c", "cat /proc/self/environ > "+name)...)
		require.Equal(t, 0, r.code, r.stderr)
		data, err := os.ReadFile(filepath.Join(c.dir, name))
		require.NoError(t, err)
		// The URLs are gone, not merely renamed: no value holds them.
		if !slices.Contains(flags, "--inherit-env") && !slices.Contains(flags, "--pass-env") {
			require.False(t, strings.Contains(string(data), c.db.URL), "a variable holds the database URL")
		}
		return readEnvFile(t, filepath.Join(c.dir, name))
	}
	passes := func(env map[string]string) {
		t.Helper()
		require.Equal(t, c.dir, env["HOME"])
		require.Equal(t, os.Getenv("PATH"), env["PATH"])
		require.Equal(t, "https://staging.example.com", env["LOCUST_HOST"])
		require.Equal(t, "50", env["LOCUST_USERS"])
		require.Equal(t, "unrelated", env["PG_ADMIN_URL_SUFFIXED"], "a name that only starts like a referenced one")
		require.Equal(t, current.Password, env["CHECKOUT_DB_PASSWORD"])
		require.Equal(t, "checkout-db=CHECKOUT_DB", env["SWARMKEY_POLICIES"])
		require.NotEmpty(t, env["SWARMKEY_LEASE_ID"])
	}

	env := childEnv("default.env")
	passes(env)
	for _, v := range []string{"SWARMKEY_DATABASE_URL", "PG_ADMIN_URL", "SWARMKEY_CONFIG", "SWARMKEY_API"} {
		requireUnset(t, env, v)
	}

	env = childEnv("pass.env", "--pass-env", "PG_ADMIN_URL", "--pass-env", "SWARMKEY_DATABASE_URL", "--pass-env", "NOT_SET_ANYWHERE")
	passes(env)
	require.Equal(t, c.db.URL, env["PG_ADMIN_URL"])
	require.Equal(t, c.db.URL, env["SWARMKEY_DATABASE_URL"])
	requireUnset(t, env, "SWARMKEY_API")
	requireUnset(t, env, "NOT_SET_ANYWHERE")

	env = childEnv("inherit.env", "--inherit-env")
	passes(env)
	require.Equal(t, c.db.URL, env["PG_ADMIN_URL"])
	require.Equal(t, c.db.URL, env["SWARMKEY_DATABASE_URL"])
	require.Equal(t, "unix:/run/swarmkey/swarmkey.sock", env["SWARMKEY_API"])
	require.Contains(t, env, "SWARMKEY_CONFIG")

	r = c.run("exec", "--policy", "checkout-db", "--pass-env", "PG_ADMIN_URL=x", "--", "true")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, `--pass-env "PG_ADMIN_URL=x"`)
	c.requireNoLeak(current.Password)
}

// requireUnset fails when the child's environment has name; it does not
// print the environment, which holds a credential.
func requireUnset(t *testing.T, env map[string]string, name string) {
	t.Helper()
	_, set := env[name]
	require.False(t, set, "the child's environment has %s", name)
}

func requireAuditClean(t *testing.T, db *testState, values ...string) {
	t.Helper()
	var dump string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(a::text, E'\n'), '') FROM audit_log a`).Scan(&dump))
	for _, v := range values {
		require.NotContains(t, dump, v)
	}
}

func TestExecForwardsSignalsAndReturnsTheChildsEnd(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	db := c.stateDB(t)

	p := c.startExec(t, "--policy", "checkout-db", "--", "sh", "-c",
		`trap 'echo term > trapped; exit 42' TERM; echo up > started; while true; do sleep 0.02; done`)
	waitForFile(t, filepath.Join(c.dir, "started"))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 42, p.wait(t, c), p.stderr.String())
	require.Equal(t, "term", waitForFile(t, filepath.Join(c.dir, "trapped")), "the child got SIGTERM")
	require.Empty(t, liveLeases(t, db))

	// Killed by a signal: 128+N, and a line that says so.
	r = c.run("exec", "--policy", "checkout-db", "--", "sh", "-c", "kill -KILL $$")
	require.Equal(t, 128+9, r.code, r.stderr)
	require.Contains(t, r.stderr, "killed by signal 9")
	r = c.run("exec", "--policy", "checkout-db", "--", "true")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	require.Empty(t, liveLeases(t, db))
}

// hangingListener returns the address of a loopback listener that accepts
// connections and never answers, as a database host that has hung would.
func hangingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, conn := range conns {
			conn.Close()
		}
	})
	return ln.Addr().String()
}

func TestExecFailsBeforeTheChildStarts(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")
	db := c.stateDB(t)
	marker := filepath.Join(c.dir, "child-ran")
	child := []string{"--", "sh", "-c", "touch " + marker}

	cases := []struct {
		name    string
		args    []string
		env     []string
		prepare func()
		code    int
		want    []string
	}{
		{name: "nothing current yet", args: []string{"--policy", "checkout-db"}, code: 2,
			want: []string{`policy "checkout-db"`, "no current credential yet", "swarmkey rotate checkout-db"}},
		{name: "unknown policy", args: []string{"--policy", "checkout-db", "--policy", "no-such"}, code: 2,
			want: []string{`"no-such"`, "unknown policy", "checkout-db"}},
		{name: "no policy", args: nil, code: 2, want: []string{"--policy is required"}},
		{name: "bad prefix", args: []string{"--policy", "checkout-db=1X"}, code: 2, want: []string{"not a variable name"}},
		{name: "bad lease ttl", args: []string{"--policy", "checkout-db", "--lease-ttl", "0s"}, code: 2, want: []string{"--lease-ttl"}},
		{name: "api without token", args: []string{"--policy", "checkout-db", "--api", "http://127.0.0.1:1"}, code: 2, want: []string{"--token-file"}},
		{name: "store refuses: key file others may read", args: []string{"--policy", "checkout-db"}, code: 1,
			prepare: func() { require.NoError(t, os.Chmod(filepath.Join(c.dir, "secrets.key"), 0o644)) },
			want:    []string{`policy "checkout-db"`, "secrets.key", "chmod 600"}},
		// The database is connected to while the stores open; a store that
		// refuses is still the error reported, without waiting for the
		// database (this one never answers: a listener that accepts nothing).
		{name: "store refuses, database hangs", args: []string{"--policy", "checkout-db"}, code: 1,
			prepare: func() { require.NoError(t, os.Chmod(filepath.Join(c.dir, "secrets.key"), 0o644)) },
			env:     []string{"SWARMKEY_DATABASE_URL=postgres://nobody:pw@" + hangingListener(t) + "/none?connect_timeout=30"},
			want:    []string{`policy "checkout-db"`, "secrets.key", "chmod 600"}},
		{name: "unreachable database", args: []string{"--policy", "checkout-db"}, code: 1,
			env:  []string{"SWARMKEY_DATABASE_URL=postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=2"},
			want: []string{"127.0.0.1:1", "unreachable"}},
		{name: "command not found", args: []string{"--policy", "checkout-db", "--", "no-such-command-xyz"}, code: 2,
			want: []string{"no-such-command-xyz"}},
	}
	for _, tc := range cases {
		if tc.prepare != nil {
			tc.prepare()
		}
		args := append([]string{"exec"}, tc.args...)
		if !slices.Contains(tc.args, "--") {
			args = append(args, child...)
		}
		saved := c.env
		c.env = append(append([]string(nil), c.env...), tc.env...)
		r := c.run(args...)
		c.env = saved
		require.NoError(t, os.Chmod(filepath.Join(c.dir, "secrets.key"), 0o600))
		require.Equal(t, tc.code, r.code, "%s: %s", tc.name, r.stderr)
		for _, w := range tc.want {
			require.Contains(t, r.stderr, w, tc.name)
		}
		require.NotContains(t, r.stderr, "goroutine", tc.name)
		require.NoFileExists(t, marker, "%s: the child must not start", tc.name)
	}
	r := c.run("exec", "--policy", "checkout-db", "sh", "-c", "touch "+marker)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "after --")
	require.NoFileExists(t, marker)
	require.Empty(t, liveLeases(t, db), "a failed start leaves no live lease")

	// The AWS store's first-version marker counts as nothing current: a
	// file store secret holding that document stands in for it here.
	s := c.fileStore()
	const token = "0190a1b2-0000-7000-8000-000000000001"
	_, err := s.PutPending(context.Background(), "loadtest/checkout-db", token, secret.FromString(`{"swarmkey":"no credential yet"}`))
	require.NoError(t, err)
	require.NoError(t, s.Promote(context.Background(), "loadtest/checkout-db", providers.PromoteRequest{Token: token}))
	r = c.run(append([]string{"exec", "--policy", "checkout-db"}, child...)...)
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "no current credential yet")
	require.NoFileExists(t, marker)
}

func TestExecThroughTheAPI(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	current, _ := c.stage("current")
	db := c.stateDB(t)
	// A second policy, so that a runner can be granted something else.
	cfg, err := os.ReadFile(c.config)
	require.NoError(t, err)
	c.write(c.config, string(cfg)+`  - name: reports
    strategy: single
    secret: loadtest/reports
    schedule: "0 0 1 1 *"
    tags: [reports]
    target: { postgres: { host: 127.0.0.1, dbname: reports, username: reports } }
`)
	sock := filepath.Join(c.dir, "api.sock")
	c.serve(t, "--api-listen", "unix:"+sock)

	addToken := func(args ...string) string {
		t.Helper()
		r := c.run(append([]string{"tokens", "add"}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		token := strings.TrimSpace(r.stdout)
		require.True(t, strings.HasPrefix(token, "swk_"), "stdout is the token alone: %q", r.stdout)
		require.NotContains(t, r.stderr, token)
		path := filepath.Join(c.dir, strings.Fields(strings.Join(args, " "))[1]+".token")
		require.NoError(t, os.WriteFile(path, []byte(token+"\n"), 0o600))
		return path
	}
	runner := addToken("--name", "locust", "--scope", "runner", "--grant", "checkout-db")
	other := addToken("--name", "reports", "--scope", "runner", "--grant", "tag:reports")
	expired := addToken("--name", "old", "--scope", "runner", "--grant", "checkout-db", "--ttl", "1h")
	revoked := addToken("--name", "gone", "--scope", "runner", "--grant", "checkout-db")
	_, err = db.Pool.Exec(context.Background(), `UPDATE tokens SET expires_at = now() - interval '1 second' WHERE name = 'old'`)
	require.NoError(t, err)
	r = c.run("tokens", "revoke", "gone")
	require.Equal(t, 0, r.code, r.stderr)
	r = c.run("tokens", "add", "--name", "x", "--scope", "runner", "--grant", "no-such-policy")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `--grant: unknown policy "no-such-policy"`)

	r = c.run("tokens", "list", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "locust")
	require.Regexp(t, `(?m)^old .* expired$`, r.stdout)
	require.Regexp(t, `(?m)^gone .* revoked `, r.stdout)
	for _, f := range []string{runner, other, expired, revoked} {
		tok, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NotContains(t, r.stdout, strings.TrimSpace(string(tok)), "list never shows a token")
		var hits int
		require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM tokens t WHERE t::text LIKE '%' || $1 || '%'`,
			strings.TrimSpace(string(tok))).Scan(&hits))
		require.Zero(t, hits, "the tokens table holds no token")
	}

	// A second credential, for reads of two policies in one exec.
	reportsDoc := `{"username":"reports","password":"pw-reports-` + strings.Repeat("9", 12) + `"}`
	files := c.fileStore()
	_, err = files.PutPending(context.Background(), "loadtest/reports", "t-reports", secret.FromString(reportsDoc))
	require.NoError(t, err)
	require.NoError(t, files.Promote(context.Background(), "loadtest/reports", providers.PromoteRequest{Token: "t-reports"}))
	both := addToken("--name", "both", "--scope", "runner", "--grant", "checkout-db,tag:reports")

	// Both binaries read through the API alike: swarmkey exec --api and
	// swarmkey-exec, the small binary for load generators.
	for _, via := range []struct {
		name string
		run  func(args ...string) result
	}{
		{"swarmkey exec --api", func(args ...string) result { return c.run(append([]string{"exec"}, args...)...) }},
		{"swarmkey-exec", c.runSmall},
	} {
		// The child gets the values through the API, under a lease.
		apiArgs := func(tokenFile string, policies ...string) []string {
			args := []string{"--api", "unix:" + sock, "--token-file", tokenFile}
			for _, p := range append([]string{"checkout-db"}, policies...) {
				args = append(args, "--policy", p)
			}
			return args
		}
		r = via.run(append(apiArgs(runner), "--", "sh", "-c", `cat /proc/self/environ > api.env; echo "$SWARMKEY_LEASE_ID" > api.lease`)...)
		require.Equal(t, 0, r.code, "%s: %s", via.name, r.stderr)
		env := readEnvFile(t, filepath.Join(c.dir, "api.env"))
		require.Equal(t, current.Password, env["CHECKOUT_DB_PASSWORD"], via.name)
		// --api loads no configuration: swarmkey's own variables are withheld,
		// the variables a config would reference are not known to be credentials.
		requireUnset(t, env, "SWARMKEY_DATABASE_URL")
		require.Equal(t, c.db.URL, env["PG_ADMIN_URL"], via.name)
		_, err = db.HeartbeatLease(context.Background(), waitForFile(t, filepath.Join(c.dir, "api.lease")))
		require.ErrorIs(t, err, state.ErrLeaseEnded, "%s: the API lease ended with the child", via.name)
		entries, err := db.Audit(context.Background(), "checkout-db", 100)
		require.NoError(t, err)
		require.Equal(t, "token:locust", entries[len(entries)-1].Actor, via.name)
		require.Equal(t, "credential.read", entries[len(entries)-1].Action, via.name)
		require.NoError(t, os.Remove(filepath.Join(c.dir, "api.lease")))

		// Two policies: one request reads both, and each read is audited.
		r = via.run(append(apiArgs(both, "reports"), "--", "sh", "-c", `cat /proc/self/environ > api.env`)...)
		require.Equal(t, 0, r.code, "%s: %s", via.name, r.stderr)
		env = readEnvFile(t, filepath.Join(c.dir, "api.env"))
		require.Equal(t, current.Password, env["CHECKOUT_DB_PASSWORD"], via.name)
		require.Equal(t, "pw-reports-999999999999", env["REPORTS_PASSWORD"], via.name)
		for _, policy := range []string{"checkout-db", "reports"} {
			entries, err := db.Audit(context.Background(), policy, 100)
			require.NoError(t, err)
			require.Equal(t, "token:both", entries[len(entries)-1].Actor, "%s: %s", via.name, policy)
			require.Equal(t, "credential.read", entries[len(entries)-1].Action, "%s: %s", via.name, policy)
		}

		marker := filepath.Join(c.dir, "child-ran")
		for _, tc := range []struct {
			name      string
			tokenFile string
			policies  []string
			prepare   func()
			code      int
			want      []string
		}{
			{"token without the grant", other, nil, nil, 2, []string{`token "reports" is not granted policy "checkout-db"`}},
			{"token without one of two grants", runner, []string{"reports"}, nil, 2, []string{`token "locust" is not granted policy "reports"`}},
			{"expired token", expired, nil, nil, 2, []string{`token "old" expired at`, "new token"}},
			{"revoked token", revoked, nil, nil, 2, []string{`token "gone" was revoked`}},
			{"token file others may read", runner, nil, func() { require.NoError(t, os.Chmod(runner, 0o644)) }, 2, []string{"chmod 600"}},
		} {
			if tc.prepare != nil {
				tc.prepare()
			}
			r := via.run(append(apiArgs(tc.tokenFile, tc.policies...), "--", "sh", "-c", "touch "+marker)...)
			require.NoError(t, os.Chmod(runner, 0o600))
			require.Equal(t, tc.code, r.code, "%s, %s: %s", via.name, tc.name, r.stderr)
			for _, w := range tc.want {
				require.Contains(t, r.stderr, w, "%s, %s", via.name, tc.name)
			}
			require.NoFileExists(t, marker, "%s, %s", via.name, tc.name)
		}
		r = via.run("--api", "unix:"+filepath.Join(c.dir, "nobody.sock"), "--token-file", runner, "--policy", "checkout-db", "--", "sh", "-c", "touch "+marker)
		require.Equal(t, 1, r.code, "%s: %s", via.name, r.stderr)
		require.Contains(t, r.stderr, "API unreachable", via.name)
		require.NoFileExists(t, marker, via.name)
		require.Empty(t, liveLeases(t, db), via.name)
	}
	r = c.runSmall("--policy", "checkout-db", "--", "sh", "-c", "touch "+filepath.Join(c.dir, "child-ran"))
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "swarmkey-exec: --api and --token-file are required")
	require.NoFileExists(t, filepath.Join(c.dir, "child-ran"))
	requireAuditClean(t, db, current.Password, "pw-reports-999999999999")

	// An API listener the operator asks for must work: no clear-text TCP
	// beyond loopback, no socket another process serves.
	r = c.run("serve", "--api-listen", "tcp:0.0.0.0:0")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "--api-listen")
	require.Contains(t, r.stderr, "needs TLS")
	r = c.run("serve", "--api-listen", "unix:"+sock)
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "another process serves this socket")
	c.requireNoLeak(current.Password)
	c.requireNoLeak("pw-reports-999999999999")
}

func TestDaemonDoesNotRotateUnderAnExecLease(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")
	cfg, err := os.ReadFile(c.config)
	require.NoError(t, err)
	// Due every 2s, startable within 1.9s of each fire.
	c.write(c.config, strings.Replace(string(cfg), c.schedule, "schedule: \"@every 2s\"\n    window: 1900ms", 1))
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	db := c.stateDB(t)
	c.serve(t)

	startedAt := func() []time.Time {
		rows, err := db.Pool.Query(context.Background(), `SELECT started_at FROM rotations WHERE policy = 'checkout-db' ORDER BY started_at`)
		require.NoError(t, err)
		var out []time.Time
		for rows.Next() {
			var at time.Time
			require.NoError(t, rows.Scan(&at))
			out = append(out, at)
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := len(startedAt())
	require.Eventually(t, func() bool { return len(startedAt()) >= before+2 }, 60*time.Second, 100*time.Millisecond,
		"the daemon rotates every few seconds")

	r = c.run("exec", "--policy", "checkout-db", "--", "sh", "-c", "date +%s.%N > child.start; sleep 6; date +%s.%N > child.end")
	require.Equal(t, 0, r.code, r.stderr)
	childStart, childEnd := unixTime(t, filepath.Join(c.dir, "child.start")), unixTime(t, filepath.Join(c.dir, "child.end"))
	require.Eventually(t, func() bool {
		all := startedAt()
		return all[len(all)-1].After(childEnd)
	}, 60*time.Second, 100*time.Millisecond, "rotations resume after the child")
	for _, at := range startedAt() {
		require.False(t, !at.Before(childStart) && !at.After(childEnd),
			"a rotation started at %s, during the child's run [%s, %s]", at.Format(time.RFC3339Nano),
			childStart.Format(time.RFC3339Nano), childEnd.Format(time.RFC3339Nano))
	}
}

func unixTime(t *testing.T, path string) time.Time {
	t.Helper()
	s := waitForFile(t, path)
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err, s)
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9))
}
