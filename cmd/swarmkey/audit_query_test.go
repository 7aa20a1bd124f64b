package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/state"
)

// auditFixture appends entries at known times, by known actors, of known
// kinds.
func (c *cli) auditFixture() {
	c.t.Helper()
	_, err := c.db.Pool.Exec(context.Background(), `
		SELECT swarmkey_ensure_audit_partition(m) FROM unnest(ARRAY['2025-01-01', '2025-03-01']::timestamptz[]) m;
		INSERT INTO audit_log (at, actor, policy, rotation, action, detail) VALUES
			('2025-01-10T08:00:00Z', 'daemon', 'checkout-db', '0190b3c4-0000-7000-8000-000000000001', 'rotation.started', '{"step":"create"}'),
			('2025-01-20T09:30:15Z', 'token:bob', 'checkout-db', NULL, 'credential.read', '{"version":"3","lease":"L1"}'),
			('2025-02-01T00:00:00Z', 'operator:bob', 'payments-db', NULL, 'rotation.forced', '{"overrides":["run \"soak\" until x"]}'),
			('2025-02-15T12:00:00Z', 'operator:alice', NULL, NULL, 'run.added', '{"run":"soak"}'),
			('2025-03-05T00:00:00Z', 'daemon', 'payments-db', NULL, 'rotation.succeeded', '{}')`)
	require.NoError(c.t, err)
}

// auditJSON runs audit with args and -o json and returns the actions it
// listed, in order.
func (c *cli) auditJSON(args ...string) []string {
	c.t.Helper()
	r := c.run(append([]string{"audit", "-o", "json"}, args...)...)
	require.Equal(c.t, 0, r.code, "%v: %s", args, r.stderr)
	var actions []string
	for _, l := range parseExport(c.t, r.stdout) {
		actions = append(actions, l.Action+"@"+l.At.UTC().Format(time.RFC3339))
	}
	return actions
}

func TestAuditFiltersEachNarrow(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	c.auditFixture()
	all := []string{
		"rotation.started@2025-01-10T08:00:00Z", "credential.read@2025-01-20T09:30:15Z", "rotation.forced@2025-02-01T00:00:00Z",
		"run.added@2025-02-15T12:00:00Z", "rotation.succeeded@2025-03-05T00:00:00Z",
	}
	require.Equal(t, all, c.auditJSON("--until", "2026-01-01"))
	require.Equal(t, []string{all[0], all[1]}, c.auditJSON("--policy", "checkout-db"))
	require.Equal(t, []string{all[0], all[1], all[2], all[4]}, c.auditJSON("--policy", "checkout-db", "--policy", "payments-db"))
	require.Equal(t, []string{all[2]}, c.auditJSON("--actor", "operator:bob"))
	require.Equal(t, []string{all[1], all[2]}, c.auditJSON("--actor", "bob"), "a name without a kind matches every kind")
	require.Equal(t, []string{all[0], all[4]}, c.auditJSON("--actor", "daemon"))
	require.Equal(t, []string{all[0], all[2], all[4]}, c.auditJSON("--kind", "rotation"))
	require.Equal(t, []string{all[2]}, c.auditJSON("--kind", "rotation.forced"))
	require.Equal(t, []string{all[1], all[3]}, c.auditJSON("--kind", "credential", "--kind", "run.added"))
	require.Equal(t, []string{all[2], all[3]}, c.auditJSON("--since", "2025-02-01", "--until", "2025-03-01"), "since inclusive, until exclusive")
	require.Equal(t, []string{all[1], all[2]}, c.auditJSON("--since", "2025-01-20T10:30:15+01:00", "--until", "2025-02-01T00:00:01Z"))
	require.Equal(t, []string{all[2]}, c.auditJSON("--actor", "bob", "--kind", "rotation", "--since", "2025-01-01"))
	require.Equal(t, []string{all[3], all[4]}, c.auditJSON("--limit", "2", "--until", "2026-01-01"), "the newest two, oldest first")

	// The table: one time format, RFC 3339 UTC to the second; the detail as
	// key=value; a note when older entries were left out.
	r := c.run("audit", "--policy", "checkout-db", "--limit", "1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `^TIME \(UTC\) +ACTOR +POLICY +ACTION +DETAIL\n`, r.stdout)
	require.Regexp(t, `(?m)^2025-01-20T09:30:15Z +token:bob +checkout-db +credential.read +lease=L1 version=3$`, r.stdout)
	require.Equal(t, 2, strings.Count(r.stdout, "\n"), r.stdout)
	require.Contains(t, r.stderr, "older entries match too: --limit 1")
	r = c.run("audit", "--kind", "rotation.started")
	require.Regexp(t, `(?m)^2025-01-10T08:00:00Z +daemon +checkout-db +rotation.started +rotation=0190b3c4-0000-7000-8000-000000000001 step=create$`, r.stdout)

	// Bad flags: exit 2, naming the flag.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kind", "Rotation!"}, `--kind "Rotation!"`},
		{[]string{"--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"--until", "2025-13-01"}, `--until "2025-13-01"`},
		{[]string{"--since", "2025-03-01", "--until", "2025-02-01"}, "--since 2025-03-01T00:00:00Z is not before --until 2025-02-01T00:00:00Z"},
		{[]string{"-o", "yaml"}, `--output "yaml"`},
		{[]string{"--limit", "-1"}, "--limit -1"},
		{[]string{"-f", "--until", "now"}, "--follow with --until"},
		{[]string{"--actor", ""}, "--actor"},
		{[]string{"lsit"}, `unknown command "lsit"`},
	} {
		r := c.run(append([]string{"audit"}, tc.args...)...)
		require.Equal(t, 2, r.code, "%v: %s", tc.args, r.stderr)
		require.Contains(t, r.stderr, tc.want, tc.args)
		require.Empty(t, r.stdout, tc.args)
	}
}

// lineReader collects a child's stdout lines as they come.
type lineReader struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func readLines(r io.Reader) *lineReader {
	lr := &lineReader{done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lr.mu.Lock()
			lr.lines = append(lr.lines, sc.Text())
			lr.mu.Unlock()
		}
	}()
	return lr
}

func (lr *lineReader) text() string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return strings.Join(lr.lines, "\n")
}

// audit -f prints entries appended after it started, those its filters
// match only, including one whose transaction committed after a later
// entry's; it ends cleanly on SIGINT.
func TestAuditFollowPrintsNewEntries(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	ctx := context.Background()
	r := c.run("runs", "add", "--name", "before", "--start", "+2h", "--duration", "1h", "--uses", "checkout-db")
	require.Equal(t, 0, r.code, r.stderr)

	cmd := c.command("audit", "-f", "-o", "json", "--kind", "run")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	out := readLines(stdout)
	require.Eventually(t, func() bool { return strings.Contains(out.text(), `"run":"before"`) }, 30*time.Second, 50*time.Millisecond,
		"the listing shows the entry from before")

	// An append that takes its id now and commits last.
	tx, err := c.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `INSERT INTO audit_log (at, actor, action, detail) VALUES (now(), 'operator:slow', 'run.added', '{"run":"late"}')`)
	require.NoError(t, err)

	r = c.run("tokens", "add", "--name", "ci", "--scope", "runner", "--grant", "checkout-db")
	require.Equal(t, 0, r.code, r.stderr)
	r = c.run("runs", "add", "--name", "after", "--start", "+3h", "--duration", "1h", "--uses", "checkout-db")
	require.Equal(t, 0, r.code, r.stderr)
	require.Eventually(t, func() bool { return strings.Contains(out.text(), `"run":"after"`) }, 30*time.Second, 50*time.Millisecond,
		"an entry appended after -f started is printed")
	require.NoError(t, tx.Commit(ctx))
	require.Eventually(t, func() bool { return strings.Contains(out.text(), `"run":"late"`) }, 30*time.Second, 50*time.Millisecond,
		"an entry whose id is below one already printed is printed when it commits")

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "SIGINT ends -f with exit 0")
	<-out.done
	text := out.text()
	require.NotContains(t, text, "token.added", "--kind run filters what -f prints")
	require.Equal(t, 1, strings.Count(text, `"run":"before"`), "each entry once")
	require.Equal(t, 1, strings.Count(text, `"run":"after"`))
	require.Equal(t, 1, strings.Count(text, `"run":"late"`))
}

// audit reads: who read which version of which credential, when, how often.
func TestAuditReadsListsWhoReadWhichVersion(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "single", "")
	ctx := context.Background()
	for _, name := range []string{"ci", "nightly"} {
		r := c.run("tokens", "add", "--name", name, "--scope", "runner", "--grant", "checkout-db")
		require.Equal(t, 0, r.code, r.stderr)
	}
	tokenID := func(name string) int64 {
		var id int64
		require.NoError(t, c.db.Pool.QueryRow(ctx, `SELECT id FROM tokens WHERE name = $1`, name).Scan(&id))
		return id
	}
	db := c.stateDB(t)
	read := func(token, version string, n int) {
		for range n {
			_, err := db.RecordCredentialRead(ctx, state.CredentialRead{TokenID: tokenID(token), TokenName: token, Policy: "checkout-db",
				Covers: []string{"checkout-db"}, Version: version})
			require.NoError(t, err)
		}
	}
	read("ci", "v1", 3)
	read("ci", "v2", 1)
	read("nightly", "v2", 2)

	r := c.run("audit", "reads")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `^FIRST READ \(UTC\) +LAST READ \(UTC\) +READER +POLICY +VERSION +COUNT +LEASE\n`, r.stdout)
	ts := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	require.Regexp(t, `(?m)^`+ts+` +`+ts+` +token:ci +checkout-db +v1 +3 +-$`, r.stdout)
	require.Regexp(t, `(?m)^`+ts+` +`+ts+` +token:ci +checkout-db +v2 +1 +-$`, r.stdout)
	require.Regexp(t, `(?m)^`+ts+` +`+ts+` +token:nightly +checkout-db +v2 +2 +-$`, r.stdout)

	type readLine struct {
		Reader, Policy, Version string
		Count                   int64
		FirstAt                 time.Time `json:"first_at"`
	}
	reads := func(args ...string) []readLine {
		r := c.run(append([]string{"audit", "reads", "-o", "json"}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		var out []readLine
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if l == "" {
				continue
			}
			var x readLine
			require.NoError(t, json.Unmarshal([]byte(l), &x), l)
			out = append(out, x)
		}
		return out
	}
	got := reads("--reader", "nightly")
	require.Len(t, got, 1)
	require.Equal(t, readLine{Reader: "token:nightly", Policy: "checkout-db", Version: "v2", Count: 2, FirstAt: got[0].FirstAt}, got[0])
	require.Len(t, reads("--reader", "token:ci"), 2)
	require.Len(t, reads("--policy", "checkout-db"), 3)
	require.Empty(t, reads("--policy", "payments-db"))
	require.Empty(t, reads("--until", "-1h"), "every read is newer")
	require.Len(t, reads("--since", "-1h"), 3)

	// The first read of each version is an audit entry: the log says it too.
	r = c.run("audit", "--kind", "credential.read", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	lines := parseExport(t, r.stdout)
	require.Len(t, lines, 3, "one per token and version")
	require.Equal(t, "token:ci", lines[0].Actor)
	require.JSONEq(t, `{"version":"v1"}`, string(lines[0].Detail))

	r = c.run("audit", "reads", "--reader", "token:")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `--reader "token:"`)
}
