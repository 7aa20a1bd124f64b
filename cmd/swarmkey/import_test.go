package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers"
)

const importPolicy = "load-api"

// newImportCLI is an installation with a state database, a file store and
// one policy, load-api, whose generated target keeps an API key that the
// test's key service accepts.
func newImportCLI(t *testing.T) *cli {
	t.Helper()
	c := &cli{t: t, dir: t.TempDir(), db: pgtest.New(t)}
	c.env = append(os.Environ(), "SWARMKEY_DATABASE_URL="+c.db.URL, "SWARMKEY_CONFIG=")
	r := c.run("keygen", filepath.Join(c.dir, "secrets.key"))
	require.Equal(t, 0, r.code, r.stderr)
	c.config = filepath.Join(c.dir, "swarmkey.yaml")
	c.write(c.config, `database: env:SWARMKEY_DATABASE_URL
stores:
  file:
    dir: secrets
    key_file: secrets.key
policies:
  - name: `+importPolicy+`
    secret: loadtest/`+importPolicy+`
    schedule: "@daily"
    canary: { attempts: 1, interval: 10ms }
    target:
      generated: { field: api_key }
`)
	r = c.run("migrate")
	require.Equal(t, 0, r.code, r.stderr)
	return c
}

func randomKey(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return prefix + hex.EncodeToString(b)
}

// TestScanImportThenRunUnderExec is the whole path of docs/scan.md: a
// Locust project with a hardcoded API key is scanned, the finding is
// imported into the file store (audited in the state database) and the
// diff applied, and the project then runs under `swarmkey exec` with real
// headless Locust against a service that accepts only the stored key, with
// no failure.
func TestScanImportThenRunUnderExec(t *testing.T) {
	t.Parallel()
	requireLocust(t)
	c := newImportCLI(t)
	key := randomKey(t, "lk_")
	project := filepath.Join(c.dir, "project")
	require.NoError(t, os.Mkdir(project, 0o755))
	locustfilePath := filepath.Join(project, "locustfile.py")
	c.write(locustfilePath, `from locust import HttpUser, constant, task

API_KEY = "`+key+`"


class ApiUser(HttpUser):
    wait_time = constant(0.1)

    @task
    def work(self):
        self.client.get("/work", headers={"Authorization": f"Bearer {API_KEY}"})
`)

	// Found: the key, at its assignment, with its use named.
	r := c.run("scan", project)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Regexp(t, `locustfile\.py:3 +header +API_KEY +lk_.….*locustfile\.py:11 header Authorization`, r.stdout)

	// Stored: the first current version, audited; the diff is printed
	// with the old value masked, and applied.
	r = c.run("import", "--finding", locustfilePath+":3", "--policy", importPolicy, "--write")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "imported "+importPolicy+": version ")
	require.Contains(t, r.stdout, `-API_KEY = "‹lk_`)
	require.Contains(t, r.stdout, `+API_KEY = os.environ["LOAD_API_API_KEY"]`)
	require.Contains(t, r.stdout, "+import os")
	require.Contains(t, r.stdout, "wrote "+locustfilePath)
	v, err := c.fileStore().Get(context.Background(), "loadtest/"+importPolicy, providers.StageCurrent)
	require.NoError(t, err)
	var doc struct {
		APIKey string `json:"api_key"`
	}
	require.NoError(t, json.Unmarshal(v.Value.Reveal(), &doc))
	require.Equal(t, key, doc.APIKey)
	var actor, detail string
	require.NoError(t, c.db.Pool.QueryRow(context.Background(),
		`SELECT actor, detail::text FROM audit_log WHERE action = 'credential.imported' AND policy = $1`, importPolicy).Scan(&actor, &detail))
	require.Equal(t, operator(t), actor)
	require.Contains(t, detail, `"source": "finding `+locustfilePath+`:3 (header)"`)
	require.Contains(t, detail, `"version": "`+v.ID+`"`)
	require.NotContains(t, detail, key)
	edited, err := os.ReadFile(locustfilePath)
	require.NoError(t, err)
	require.NotContains(t, string(edited), key)

	// Nothing hardcoded is left.
	r = c.run("scan", project)
	require.Equal(t, 0, r.code, r.stdout+r.stderr)

	// Run: real headless Locust under exec, against a service that accepts
	// only the stored key.
	keys := &keyService{t: t, store: c.fileStore(), secretID: "loadtest/" + importPolicy, pids: map[string]int{}, seen: map[string]bool{}}
	srv := httptest.NewServer(keys)
	t.Cleanup(srv.Close)
	csvPrefix := filepath.Join(c.dir, "run")
	args := []string{"--config", c.config, "exec", "--policy", importPolicy, "--", locustBinary, "--headless", "-f", locustfilePath,
		"--host", srv.URL, "-u", "2", "-r", "2", "-t", "5s", "--only-summary", "--csv", csvPrefix}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(slicesWithout(c.env, "PYTHONPATH="), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Dir = project
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("Locust did not finish within 90s:\n%s", out.String())
	}
	require.NoError(t, err, out.String())
	c.mu.Lock()
	c.printed.WriteString(out.String())
	c.mu.Unlock()
	requests, failures := locustTotals(t, csvPrefix, out.String())
	accepted, refused, _ := keys.counts()
	require.Positive(t, requests, out.String())
	require.Zero(t, failures, out.String())
	require.Zero(t, refused)
	require.GreaterOrEqual(t, accepted, requests, "every request Locust counted reached the service with the stored key")
	c.requireNoLeak(key)
}

func slicesWithout(env []string, prefix string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

// TestImportSourcesAndRefusals: the value may come from an environment
// variable or standard input; a policy that has a current version, an
// unknown policy, a line without a finding and an empty value are bad
// input; nothing is echoed.
func TestImportSourcesAndRefusals(t *testing.T) {
	t.Parallel()
	c := newImportCLI(t)
	key := randomKey(t, "ek_")
	project := filepath.Join(c.dir, "project")
	require.NoError(t, os.Mkdir(project, 0o755))
	file := filepath.Join(project, "locustfile.py")
	c.write(file, "API_KEY = \""+key+"\"\n")

	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"import", "--policy", "no-such-policy", "--finding", file + ":1"}, `unknown policy "no-such-policy"`},
		{[]string{"import", "--policy", importPolicy, "--finding", file + ":2"}, "no finding on that line"},
		{[]string{"import", "--policy", importPolicy, "--finding", file}, "use FILE:LINE"},
		{[]string{"import", "--policy", importPolicy, "--from-env", "NO_SUCH_VARIABLE"}, "--from-env NO_SUCH_VARIABLE: the variable is unset or empty"},
		{[]string{"import", "--policy", importPolicy, "--write"}, "--write, --plugin and --variable go with --finding"},
		{[]string{"import", "--finding", file + ":1"}, "--policy is required"},
	} {
		r := c.run(bad.args...)
		require.Equal(t, 2, r.code, "%v: %s%s", bad.args, r.stdout, r.stderr)
		require.Contains(t, r.stderr, bad.says)
	}

	// Without --write the diff is printed and the file is left alone.
	r := c.run("import", "--policy", importPolicy, "--finding", file+":1", "--plugin")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, `+API_KEY = swarmkey_locust.credential("load-api")["api_key"]`)
	require.Contains(t, r.stdout, "apply it with --write")
	unchanged, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, "API_KEY = \""+key+"\"\n", string(unchanged))

	// Now a current version exists: import refuses to overwrite it.
	r = c.run("import", "--policy", importPolicy, "--finding", file+":1")
	require.Equal(t, 2, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, "load-api already has a current version")
	require.Contains(t, r.stderr, "swarmkey rotate load-api --local")

	// --from-env and standard input, into a fresh installation each.
	other := newImportCLI(t)
	envKey := randomKey(t, "env_")
	other.env = append(other.env, "LEGACY_API_KEY="+envKey)
	r = other.run("import", "--policy", importPolicy, "--from-env", "LEGACY_API_KEY")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "from environment variable LEGACY_API_KEY")
	require.Contains(t, r.stdout, "LOAD_API_API_KEY under `swarmkey exec --policy load-api`")
	other.requireNoLeak(envKey)

	third := newImportCLI(t)
	stdinKey := randomKey(t, "in_")
	cmd := third.command("import", "--policy", importPolicy)
	cmd.Stdin = strings.NewReader(stdinKey + "\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "from standard input")
	require.NotContains(t, string(out), stdinKey)
	v, err := third.fileStore().Get(context.Background(), "loadtest/"+importPolicy, providers.StageCurrent)
	require.NoError(t, err)
	require.Equal(t, `{"api_key":"`+stdinKey+`"}`, string(v.Value.Reveal()))
	c.requireNoLeak(key)
}

// TestImportIsCheckedByTheCanaryAndRotatedAway: a PostgreSQL password is
// imported only when it logs in (a wrong one stores nothing), and the next
// rotation replaces it like any current version.
func TestImportIsCheckedByTheCanaryAndRotatedAway(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	wrong, right := randomKey(t, "Wr!"), randomKey(t, "Pg!")
	_, err := c.db.Pool.Exec(context.Background(), fmt.Sprintf(`ALTER ROLE %s PASSWORD '%s'`, pgx.Identifier{c.role}.Sanitize(), right))
	require.NoError(t, err)

	cmd := c.command("import", "--policy", "checkout-db")
	cmd.Stdin = strings.NewReader(wrong)
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), string(out))
	require.Contains(t, string(out), "the target refused the imported credential, so nothing was stored")
	_, found := c.stage(providers.StageCurrent)
	require.False(t, found)
	_, found = c.stage(providers.StagePending)
	require.False(t, found, "the refused value's pending version is discarded")

	cmd = c.command("import", "--policy", "checkout-db")
	cmd.Stdin = strings.NewReader(right)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	current, found := c.stage(providers.StageCurrent)
	require.True(t, found)
	require.Equal(t, right, current.Password)
	require.Equal(t, c.role, current.Username)

	r := c.run("rotate", "checkout-db", "--local")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	current, _ = c.stage(providers.StageCurrent)
	require.NotEqual(t, right, current.Password)
	require.True(t, c.logsIn(current))
	require.False(t, c.logsIn(login{Username: c.role, Password: right}), "the imported password no longer logs in")
	for _, s := range []string{wrong, right} {
		require.NotContains(t, string(out), s)
	}
	c.requireNoLeak(wrong, right)
}
