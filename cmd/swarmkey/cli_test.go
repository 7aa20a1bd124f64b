package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
)

// binary is swarmkey, smallBinary swarmkey-exec, both built for the run.
var binary, smallBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "swarmkey-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "swarmkey")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build swarmkey:", err)
		os.Exit(1)
	}
	smallBinary = filepath.Join(dir, "swarmkey-exec")
	build = exec.Command("go", "build", "-o", smallBinary, "../swarmkey-exec")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build swarmkey-exec:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli is one test's installation: a database, a file store, a config.
type cli struct {
	t      *testing.T
	dir    string
	db     *pgtest.Database
	config string
	role   string
	group  string
	env    []string
	// fire is the policy's next fire and schedule its config line: daily,
	// at the hour some 12 hours from now (UTC), so that no test's daemon
	// finds the window open and rotates on its own, whatever the time of
	// day (a @daily policy did so from 00:00 to 01:00).
	fire     time.Time
	schedule string
	mu       sync.Mutex
	printed  strings.Builder // everything swarmkey printed, for leak searches
}

type result struct {
	code           int
	stdout, stderr string
}

func newCLI(t *testing.T, strategy, canaryQuery string) *cli {
	t.Helper()
	c := &cli{t: t, dir: t.TempDir(), db: pgtest.New(t), role: pgtest.RoleName(t, "loadtest"), group: pgtest.RoleName(t, "loadtest_rw")}
	c.fire = time.Now().UTC().Add(12 * time.Hour).Truncate(time.Hour)
	c.schedule = fmt.Sprintf(`schedule: "0 %d * * *"`, c.fire.Hour())
	c.env = append(os.Environ(), "SWARMKEY_DATABASE_URL="+c.db.URL, "PG_ADMIN_URL="+c.db.URL, "SWARMKEY_CONFIG=")
	ctx := context.Background()
	for _, sql := range []string{
		`CREATE ROLE ` + pgx.Identifier{c.group}.Sanitize() + ` NOLOGIN`,
		`CREATE ROLE ` + pgx.Identifier{c.role}.Sanitize() + ` LOGIN`,
		`CREATE TABLE forbidden (id int)`,
	} {
		_, err := c.db.Pool.Exec(ctx, sql)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, role := range []string{c.role, c.role + "_b", c.group} {
			_, _ = c.db.Pool.Exec(context.Background(), `DROP OWNED BY `+pgx.Identifier{role}.Sanitize())
			_, _ = c.db.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+pgx.Identifier{role}.Sanitize())
		}
	})

	keyFile := filepath.Join(c.dir, "secrets.key")
	r := c.run("keygen", keyFile)
	require.Equal(t, 0, r.code, r.stderr)

	host, port := pgtest.LoginHost(t)
	group := ""
	if strategy == "alternating" {
		group = "\n        group_role: " + c.group
	}
	canary := ""
	if canaryQuery != "" {
		canary = "\n        canary_query: " + canaryQuery
	}
	c.config = filepath.Join(c.dir, "swarmkey.yaml")
	c.write(c.config, fmt.Sprintf(`database: env:SWARMKEY_DATABASE_URL
stores:
  file:
    dir: secrets
    key_file: secrets.key
policies:
  - name: checkout-db
    strategy: %s
    secret: loadtest/checkout-db
    %s
    canary: { attempts: 1, interval: 10ms }
    target:
      postgres:
        host: %s
        port: %d
        dbname: %s
        sslmode: disable
        username: %s
        admin: env:PG_ADMIN_URL%s%s
`, strategy, c.schedule, host, port, c.db.Name, c.role, group, canary))
	r = c.run("migrate")
	require.Equal(t, 0, r.code, r.stderr)
	return c
}

func (c *cli) write(path, content string) {
	c.t.Helper()
	require.NoError(c.t, os.WriteFile(path, []byte(content), 0o600))
}

func (c *cli) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"--config", c.config}, args...)...)
	if c.config == "" {
		cmd = exec.Command(binary, args...)
	}
	cmd.Env = c.env
	cmd.Dir = c.dir
	return cmd
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runCommand(c.command(args...))
}

// runSmall runs swarmkey-exec, which reads no configuration, with args.
func (c *cli) runSmall(args ...string) result {
	c.t.Helper()
	cmd := exec.Command(smallBinary, args...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	return c.runCommand(cmd)
}

func (c *cli) runCommand(cmd *exec.Cmd) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else {
		require.NoError(c.t, err)
	}
	c.mu.Lock()
	c.printed.WriteString(stdout.String() + stderr.String())
	c.mu.Unlock()
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (c *cli) fileStore() *file.Store {
	c.t.Helper()
	s, err := file.Open(file.Options{Dir: filepath.Join(c.dir, "secrets"), KeyFile: filepath.Join(c.dir, "secrets.key")})
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = s.Close() })
	return s
}

type login struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (c *cli) stage(stage providers.Stage) (login, bool) {
	c.t.Helper()
	v, err := c.fileStore().Get(context.Background(), "loadtest/checkout-db", stage)
	if err != nil {
		return login{}, false
	}
	var l login
	require.NoError(c.t, json.Unmarshal(v.Value.Reveal(), &l))
	return l, true
}

func (c *cli) logsIn(l login) bool {
	c.t.Helper()
	host, port := pgtest.LoginHost(c.t)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s sslmode=disable connect_timeout=5", host, port, c.db.Name))
	require.NoError(c.t, err)
	cfg.User, cfg.Password = l.Username, l.Password
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	return true
}

func (c *cli) requireNoLeak(passwords ...string) {
	c.t.Helper()
	c.mu.Lock()
	printed := c.printed.String()
	c.mu.Unlock()
	for _, p := range passwords {
		require.NotEmpty(c.t, p)
		require.False(c.t, strings.Contains(printed, p), "a generated password appears in swarmkey's output")
	}
}

func TestRotateLocalPrintsStepsAndStatus(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "alternating", "")

	var passwords []string
	for range 3 {
		r := c.run("rotate", "checkout-db", "--local")
		require.Equal(t, 0, r.code, r.stdout+r.stderr)
		for _, step := range []string{"create", "set", "test", "promote", "finish"} {
			require.Regexp(t, regexp.MustCompile(`(?m)^  `+step+` +[0-9.]+(µs|ms|s)`), r.stdout)
		}
		require.Contains(t, r.stdout, "rotated checkout-db")
		current, ok := c.stage(providers.StageCurrent)
		require.True(t, ok)
		require.True(t, c.logsIn(current))
		passwords = append(passwords, current.Password)
	}

	r := c.run("status")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `checkout-db +alternating +file:loadtest/checkout-db +[0-9a-f-]{36} +`+c.role+`(_b)? +[0-9]+s +succeeded`, r.stdout)

	r = c.run("history", "checkout-db")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 4, strings.Count(r.stdout, "\n"), "a header and three rotations:\n"+r.stdout)
	require.Equal(t, 3, strings.Count(r.stdout, "succeeded"))

	c.requireNoLeak(passwords...)
}

func TestTwoLocalRotationsOfOnePolicy(t *testing.T) {
	t.Parallel()
	// The canary sleeps, so the first process holds the lock long enough.
	c := newCLI(t, "alternating", "SELECT pg_sleep(3)")

	first := c.command("rotate", "checkout-db", "--local")
	var firstOut bytes.Buffer
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	first.Stdout, first.Stderr = pw, &firstOut
	require.NoError(t, first.Start())
	pw.Close()

	// Wait until the first has created its rotation, then start the second.
	buf := make([]byte, 4096)
	var seen strings.Builder
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(seen.String(), "create") && time.Now().Before(deadline) {
		n, err := pr.Read(buf)
		seen.Write(buf[:n])
		require.NoError(t, err)
	}
	second := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 3, second.code, second.stdout+second.stderr)
	require.Contains(t, second.stderr, "rotation in progress")

	rest := make(chan string)
	go func() {
		var b strings.Builder
		for {
			n, err := pr.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				rest <- b.String()
				return
			}
		}
	}()
	require.NoError(t, first.Wait(), firstOut.String())
	firstStdout := seen.String() + <-rest
	token := regexp.MustCompile(`token ([0-9a-f-]{36})`).FindStringSubmatch(firstStdout)
	require.Len(t, token, 2, firstStdout)
	require.Contains(t, second.stderr, token[1], "the loser names the token holding the lock")
}

func TestFailedCanaryExitsNonZeroAndRollsBack(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	before, _ := c.stage(providers.StageCurrent)

	// Same policy, now with a canary the role may not run.
	cfg, err := os.ReadFile(c.config)
	require.NoError(t, err)
	c.write(c.config, strings.Replace(string(cfg), "admin: env:PG_ADMIN_URL", "admin: env:PG_ADMIN_URL\n        canary_query: SELECT * FROM forbidden", 1))

	r = c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "canary")
	require.Contains(t, r.stdout, "rolled back")

	after, _ := c.stage(providers.StageCurrent)
	require.Equal(t, before, after)
	require.True(t, c.logsIn(after))
	_, pending := c.stage(providers.StagePending)
	require.False(t, pending)

	r = c.run("history", "checkout-db")
	require.Contains(t, r.stdout, "rolled back")
	c.requireNoLeak(before.Password)
}

func TestBadInputFailsClearlyAndChangesNothing(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stderr)
	before, _ := c.stage(providers.StageCurrent)
	good, err := os.ReadFile(c.config)
	require.NoError(t, err)

	cases := []struct {
		name    string
		config  string
		env     []string
		prepare func()
		want    []string
	}{
		{name: "malformed YAML", config: strings.Replace(string(good), "policies:", "policies: [", 1),
			want: []string{"swarmkey.yaml:"}},
		{name: "unknown field", config: strings.Replace(string(good), "    strategy: single", "    strategy: single\n    stratgey: single", 1),
			want: []string{"swarmkey.yaml:9", "stratgey"}},
		{name: "plaintext credential", config: strings.Replace(string(good), "admin: env:PG_ADMIN_URL", "admin: hunter2", 1),
			want: []string{"swarmkey.yaml:", "admin", "env:"}},
		{name: "missing reference", config: string(good), env: []string{"PG_ADMIN_URL="},
			want: []string{"PG_ADMIN_URL"}},
		{name: "unreachable database", config: string(good), env: []string{"SWARMKEY_DATABASE_URL=postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=2"},
			want: []string{"127.0.0.1:1", "unreachable"}},
		{name: "loose key file", config: string(good),
			prepare: func() { require.NoError(t, os.Chmod(filepath.Join(c.dir, "secrets.key"), 0o644)) },
			want:    []string{"secrets.key", "chmod 600"}},
	}
	for _, tc := range cases {
		c.write(c.config, tc.config)
		if tc.prepare != nil {
			tc.prepare()
		}
		saved := c.env
		c.env = append(append([]string(nil), c.env...), tc.env...)
		r := c.run("rotate", "checkout-db", "--local")
		c.env = saved
		require.NotEqual(t, 0, r.code, tc.name)
		for _, want := range tc.want {
			require.Contains(t, r.stderr, want, tc.name)
		}
		require.NotContains(t, r.stderr, "goroutine", tc.name)
		require.NoError(t, os.Chmod(filepath.Join(c.dir, "secrets.key"), 0o600))
	}
	c.write(c.config, string(good))

	after, _ := c.stage(providers.StageCurrent)
	require.Equal(t, before, after, "nothing was rotated")
	require.True(t, c.logsIn(after))

	r = c.run("rotate", "no-such-policy", "--local")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `unknown policy "no-such-policy"`)

	// validate checks files without touching anything.
	bad := filepath.Join(c.dir, "bad.yaml")
	c.write(bad, "policies:\n  - name: x\n    schedule: \"61 * * * *\"\n    target: { postgres: { host: h, dbname: d, username: u } }\n")
	r = c.run("validate", bad)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "bad.yaml:3")
	r = c.run("validate", c.config)
	require.Equal(t, 0, r.code, r.stderr)
	c.requireNoLeak(before.Password)
}
