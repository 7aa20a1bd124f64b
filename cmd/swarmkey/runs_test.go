package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/user"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newRunsCLI is newCLI with a second policy, reports-db, tagged reporting
// and nightly.
func newRunsCLI(t *testing.T) *cli {
	t.Helper()
	c := newCLI(t, "single", "")
	cfg, err := os.ReadFile(c.config)
	require.NoError(t, err)
	c.write(c.config, string(cfg)+`  - name: reports-db
    strategy: single
    secret: loadtest/reports-db
    schedule: "@daily"
    tags: [reporting, nightly]
    target:
      postgres:
        host: 127.0.0.1
        port: 5432
        dbname: reports
        username: reports
        admin: env:PG_ADMIN_URL
`)
	return c
}

// runsWith runs swarmkey with extra environment variables.
func (c *cli) runsWith(env []string, args ...string) result {
	c.t.Helper()
	saved := c.env
	c.env = append(append([]string(nil), c.env...), env...)
	defer func() { c.env = saved }()
	return c.run(args...)
}

// snapshot returns the runs table and the audit log as text, to prove that
// a refused command wrote nothing.
func (c *cli) snapshot() string {
	c.t.Helper()
	var runs, audit string
	ctx := context.Background()
	require.NoError(c.t, c.db.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(r::text, E'\n' ORDER BY id), '') FROM runs r`).Scan(&runs))
	require.NoError(c.t, c.db.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(a::text, E'\n' ORDER BY id), '') FROM audit_log a`).Scan(&audit))
	return runs + "\n--\n" + audit
}

type listedRun struct {
	Name            string     `json:"name"`
	Kind            string     `json:"kind"`
	Start           *string    `json:"start"`
	End             *string    `json:"end"`
	Every           string     `json:"every"`
	Timezone        string     `json:"timezone"`
	Duration        string     `json:"duration"`
	DurationSeconds float64    `json:"duration_seconds"`
	Uses            []string   `json:"uses"`
	State           string     `json:"state"`
	CreatedBy       string     `json:"created_by"`
	CancelledAt     *time.Time `json:"cancelled_at"`
	CancelledBy     string     `json:"cancelled_by"`
}

func (c *cli) listRuns(args ...string) []listedRun {
	c.t.Helper()
	r := c.run(append([]string{"runs", "list", "-o", "json"}, args...)...)
	require.Equal(c.t, 0, r.code, r.stderr)
	var out []listedRun
	require.NoError(c.t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	return out
}

func operator(t *testing.T) string {
	u, err := user.Current()
	require.NoError(t, err)
	return "operator:" + u.Username
}

func TestRunsAddListCancel(t *testing.T) {
	t.Parallel()
	c := newRunsCLI(t)

	r := c.run("runs", "list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "no runs scheduled")
	require.Equal(t, "[]\n", c.run("runs", "list", "-o", "json").stdout)

	// A relative start, shown in the zone asked for.
	before := time.Now()
	r = c.run("runs", "add", "--name", "soak", "--start", "+2h", "--duration", "90m",
		"--uses", "checkout-db", "--uses", "tag:reporting", "--timezone", "Asia/Tokyo")
	after := time.Now()
	require.Equal(t, 0, r.code, r.stderr)
	m := regexp.MustCompile(`^added one-off run "soak": (\S+) to (\S+) \(1h30m\), uses checkout-db, tag:reporting\n$`).FindStringSubmatch(r.stdout)
	require.Len(t, m, 3, r.stdout)
	start, err := time.Parse(time.RFC3339, m[1])
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(m[1], "+09:00"), "shown in Asia/Tokyo: %s", m[1])
	require.False(t, start.Before(before.Add(2*time.Hour).Truncate(time.Second)), m[1])
	require.False(t, start.After(after.Add(2*time.Hour)), m[1])
	require.Equal(t, start.Add(90*time.Minute).Format(time.RFC3339), m[2])

	r = c.run("runs", "add", "--name", "nightly", "--every", "30 2 * * *", "--timezone", "Europe/Berlin",
		"--duration", "1h", "--uses", "reports-db,checkout-db")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `added recurring run "nightly": every "30 2 * * *" in Europe/Berlin for 1h, uses reports-db, checkout-db; next `)

	// An RFC 3339 start; the run is under way.
	r = c.run("runs", "add", "--name", "under-way", "--start", "-30m", "--duration", "1h", "--uses", "tag:nightly")
	require.Equal(t, 0, r.code, r.stderr)

	// Text, in the local zone of the operator (TZ).
	r = c.runsWith([]string{"TZ=America/New_York"}, "runs", "list")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 4, r.stdout)
	require.Regexp(t, `^NAME +KIND +START +END +DURATION +SCHEDULE +USES +STATE +ADDED BY$`, lines[0])
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	require.Regexp(t, `^soak +one-off +`+regexp.QuoteMeta(start.In(ny).Format(time.RFC3339))+` +\S+ +1h30m +- +checkout-db,tag:reporting +scheduled +`+regexp.QuoteMeta(operator(t))+`$`, lines[1])
	require.Regexp(t, `^nightly +recurring +\S+-0[45]:00 +\S+ +1h +30 2 \* \* \* Europe/Berlin +reports-db,checkout-db +(scheduled|running) `, lines[2])
	require.Regexp(t, `^under-way +one-off .* running `, lines[3])

	// JSON, in another zone.
	runs := c.listRuns("--timezone", "Asia/Tokyo")
	require.Len(t, runs, 3)
	soak := runs[0]
	require.Equal(t, "soak", soak.Name)
	require.Equal(t, "one_off", soak.Kind)
	require.Equal(t, m[1], *soak.Start)
	require.Equal(t, "1h30m", soak.Duration)
	require.Equal(t, 5400.0, soak.DurationSeconds)
	require.Equal(t, []string{"checkout-db", "tag:reporting"}, soak.Uses)
	require.Equal(t, "scheduled", soak.State)
	require.Equal(t, operator(t), soak.CreatedBy)
	nightly := runs[1]
	require.Equal(t, "recurring", nightly.Kind)
	require.Equal(t, "30 2 * * *", nightly.Every)
	require.Equal(t, "Europe/Berlin", nightly.Timezone)
	next, err := time.Parse(time.RFC3339, *nightly.Start)
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(*nightly.Start, "+09:00"))
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	// 03:00 on the spring-forward day, when 02:30 does not exist.
	require.Contains(t, []string{"02:30", "03:00"}, next.In(berlin).Format("15:04"), "the next occurrence, at 02:30 Berlin time")
	require.Equal(t, "running", runs[2].State)

	// Cancel: gone from the list, kept with --all, audited.
	r = c.run("runs", "cancel", "soak")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `cancelled run "soak"`)
	r = c.run("runs", "cancel", "soak")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `run "soak": no active run has this name`)

	runs = c.listRuns()
	require.Equal(t, []string{"nightly", "under-way"}, []string{runs[0].Name, runs[1].Name})
	runs = c.listRuns("--all")
	require.Len(t, runs, 3)
	require.Equal(t, "cancelled", runs[0].State)
	require.NotNil(t, runs[0].CancelledAt)
	require.Equal(t, operator(t), runs[0].CancelledBy)

	r = c.run("runs", "add", "--name", "soak", "--start", "+1d", "--duration", "1h", "--uses", "checkout-db")
	require.Equal(t, 0, r.code, "a cancelled run's name may be used again: %s", r.stderr)

	rows, err := c.db.Pool.Query(context.Background(), `SELECT actor, action, detail->>'run' FROM audit_log ORDER BY id`)
	require.NoError(t, err)
	var audit []string
	for rows.Next() {
		var actor, action, run string
		require.NoError(t, rows.Scan(&actor, &action, &run))
		require.Equal(t, operator(t), actor)
		audit = append(audit, action+" "+run)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"run.added soak", "run.added nightly", "run.added under-way", "run.cancelled soak", "run.added soak"}, audit)
}

func TestRunsBadInputFailsClearlyAndWritesNothing(t *testing.T) {
	t.Parallel()
	c := newRunsCLI(t)
	r := c.run("runs", "add", "--name", "existing", "--start", "+1h", "--duration", "1h", "--uses", "checkout-db")
	require.Equal(t, 0, r.code, r.stderr)
	before := c.snapshot()

	oneOff := func(extra ...string) []string {
		args := []string{"runs", "add", "--name", "new", "--start", "+1h", "--duration", "1h", "--uses", "checkout-db"}
		return append(args, extra...)
	}
	with := func(flag, value string) []string {
		args := oneOff()
		for i := range args {
			if args[i] == flag {
				args[i+1] = value
				return args
			}
		}
		return append(args, flag, value)
	}
	recurring := func(every string, extra ...string) []string {
		return append([]string{"runs", "add", "--name", "new", "--every", every, "--duration", "30m", "--uses", "checkout-db"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"invalid cron", recurring("61 * * * *"), []string{`--every "61 * * * *": `, "above maximum"}},
		{"cron with too few fields", recurring("* * *"), []string{`--every "* * *": `, "five fields"}},
		{"zone in the spec", recurring("CRON_TZ=UTC 0 * * * *"), []string{`--every "CRON_TZ=UTC 0 * * * *": `, "timezone"}},
		{"unknown zone", recurring("0 * * * *", "--timezone", "Mars/Olympus_Mons"), []string{`--timezone "Mars/Olympus_Mons": not an IANA zone`}},
		{"unknown display zone", []string{"runs", "list", "--timezone", "Nowhere/Town"}, []string{`--timezone "Nowhere/Town": not an IANA zone`}},
		{"runs overlap", recurring("@every 20m"), []string{`--duration "30m": longer than the period`}},
		{"every below a second", recurring("@every 500ms"), []string{`--every "@every 500ms": @every 500ms: the period must be at least 1s`}},
		{"every of a fraction", recurring("@every 90500ms"), []string{`--every "@every 90500ms": @every 90500ms: the period must be a whole number of seconds, such as 1m30s or 1m31s`}},
		{"zero duration", with("--duration", "0s"), []string{`--duration "0s": a run must end after it starts`}},
		{"negative duration", with("--duration", "-1h"), []string{`--duration "-1h": a run must end after it starts`}},
		{"unparseable duration", with("--duration", "an hour"), []string{`--duration "an hour": not a duration`}},
		{"missing duration", []string{"runs", "add", "--name", "new", "--start", "+1h", "--uses", "checkout-db"}, []string{"--duration is required"}},
		{"unparseable start", with("--start", "tomorrow"), []string{`--start "tomorrow": use RFC 3339`, "now", "+2h"}},
		{"start without a zone", with("--start", "2026-05-01T14:00:00"), []string{`--start "2026-05-01T14:00:00": use RFC 3339`}},
		{"bad relative start", with("--start", "+2 hours"), []string{`--start "+2 hours": a relative time is`}},
		{"run already over", with("--start", "-2h"), []string{`--start "-2h": the run would already be over`}},
		{"start and every", oneOff("--every", "@daily"), []string{"--start and --every"}},
		{"neither start nor every", []string{"runs", "add", "--name", "new", "--duration", "1h", "--uses", "checkout-db"}, []string{"--start or --every is required"}},
		{"unknown policy", with("--uses", "checkout-db,nope"), []string{`--uses: unknown policy "nope": known policies are checkout-db, reports-db`}},
		{"unknown tag", with("--uses", "tag:nope"), []string{`--uses: no policy has tag "nope": known tags are nightly, reporting`}},
		{"no uses", []string{"runs", "add", "--name", "new", "--start", "+1h", "--duration", "1h"}, []string{"--uses is required"}},
		{"empty uses", with("--uses", " , "), []string{"--uses is required"}},
		{"duplicate active name", with("--name", "existing"), []string{`--name "existing": an active run already has this name`, "runs cancel existing"}},
		{"name with a space", with("--name", "two words"), []string{`--name "two words": no white space`}},
		{"missing name", []string{"runs", "add", "--start", "+1h", "--duration", "1h", "--uses", "checkout-db"}, []string{`--name "": missing`}},
		{"cancel an unknown run", []string{"runs", "cancel", "nope"}, []string{`run "nope": no active run has this name`}},
		{"unknown subcommand", []string{"runs", "frob"}, []string{`unknown command "frob"`}},
		{"bad output format", []string{"runs", "list", "-o", "yaml"}, []string{`--output "yaml": use text or json`}},
		{"unknown flag", oneOff("--colour", "red"), []string{"unknown flag: --colour"}},
	}
	for _, tc := range cases {
		r := c.run(tc.args...)
		require.Equal(t, 2, r.code, "%s: %s%s", tc.name, r.stdout, r.stderr)
		for _, want := range tc.want {
			require.Contains(t, r.stderr, want, tc.name)
		}
		require.NotContains(t, r.stderr, "goroutine", tc.name)
		require.Equal(t, before, c.snapshot(), "%s wrote something", tc.name)
	}
}
