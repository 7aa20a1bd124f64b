package timeline_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/api"
	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/internal/pgtest"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/state"
)

// -timeline.screenshots DIR writes the pages the browser test loads as
// DIR/timeline.png and DIR/timeline-policy.png: how docs/ gets its
// pictures (see README.md, "The timeline page").
var screenshots = flag.String("timeline.screenshots", "", "write the browser test's screenshots to this folder")

// chromium is Debian's browser, installed by scripts/test-deps.
const chromium = "/usr/bin/chromium"

// world is a configured swarmkey with a state database holding what the
// page shows: rotations (and the values they generated), a Locust run, a
// live lease and a policy that needs attention.
type world struct {
	sess   *app.Session
	set    *daemon.PolicySet
	values []string // every generated credential, and the database URL
	runEnd time.Time
}

// newWorld configures three policies: checkout-db (hourly, deferred by the
// Locust run "nightly-load"), search-api (leased by the live run
// "smoke-test") and payments-db (its target refuses: needs attention).
func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	pg := pgtest.New(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	dbFile := write("db-url", pg.URL)
	require.NoError(t, file.GenerateKey(filepath.Join(dir, "secrets.key")))
	host, port := pgtest.LoginHost(t)
	cfgFile := write("swarmkey.yaml", fmt.Sprintf(`database: file:%s
stores:
  file: { dir: secrets, key_file: secrets.key }
policies:
  - name: checkout-db
    schedule: "0 * * * *"
    window: 20m
    expected_duration: 2m
    guard_before: 5m
    guard_after: 5m
    tags: [checkout]
    target:
      generated: { field: token }
  - name: search-api
    schedule: "0 */6 * * *"
    window: 2h
    target:
      generated: {}
  - name: payments-db
    strategy: single
    schedule: "@daily"
    target:
      postgres:
        host: %s
        port: %d
        dbname: %s
        username: swarmkey_timeline_absent
        sslmode: disable
        admin: file:%s
`, dbFile, host, port, pg.Name, dbFile))
	cfg, err := config.Load(cfgFile)
	require.NoError(t, err)
	rt := app.NewRuntime(cfg, nil)
	sess, err := app.Open(ctx, rt)
	require.NoError(t, err)
	t.Cleanup(sess.Close)
	_, err = sess.DB.Migrate(ctx)
	require.NoError(t, err)
	w := &world{sess: sess, set: sess.PolicySet(), values: []string{pg.URL}}

	rot := rotator.New(sess.DB, rotator.Config{})
	for _, name := range []string{"checkout-db", "search-api"} {
		cred, err := rt.Credential(ctx, name)
		require.NoError(t, err)
		_, err = rot.Rotate(ctx, cred, rotator.Options{Actor: "operator:timeline-test"})
		require.NoError(t, err, name)
		doc, err := rt.ReadStore(ctx, "file", name)
		require.NoError(t, err)
		var fields map[string]string
		require.NoError(t, json.Unmarshal([]byte(doc.RevealString()), &fields))
		for _, v := range fields {
			w.values = append(w.values, v)
		}
		w.values = append(w.values, doc.RevealString())
	}
	cred, err := rt.Credential(ctx, "payments-db")
	require.NoError(t, err)
	res, err := rot.Rotate(ctx, cred, rotator.Options{Actor: "daemon"})
	require.Error(t, err, "payments-db's role does not exist: its rotation must fail")
	require.NotEmpty(t, res.Token)
	// What the daemon does once the attempts are spent.
	require.NoError(t, sess.DB.MarkNeedsAttention(ctx, res.Token, "5 attempts failed"))

	// The run covers the next two fires of checkout-db but one.
	next := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	start := next.Add(50 * time.Minute)
	_, err = sess.AddRun(ctx, app.RunRequest{Name: "nightly-load", Start: start, Duration: 2 * time.Hour,
		Uses: []string{"checkout-db"}, Actor: "operator:timeline-test"})
	require.NoError(t, err)
	w.runEnd = start.Add(2 * time.Hour)
	_, err = sess.DB.StartLease(ctx, state.LeaseRequest{RunName: "smoke-test", Uses: []string{"search-api"},
		Holder: "locust@loadgen-1", TTL: time.Hour})
	require.NoError(t, err)
	return w
}

// serve starts the health server with the timeline pages on a free
// loopback port and returns its base URL.
func (w *world) serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	stop, err := w.sess.ServeStatus(addr, api.Timeouts{}, prometheus.NewRegistry(), func() *daemon.PolicySet { return w.set })
	require.NoError(t, err)
	t.Cleanup(stop)
	return "http://" + addr
}

// browser starts Debian's chromium headless and collects every console
// error, uncaught exception and error log entry of the pages it loads.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	_, err := os.Stat(chromium)
	require.NoError(t, err, "%s is missing: run scripts/test-deps (it installs Debian's chromium)", chromium)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1320, 900),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
	}
	var mu sync.Mutex
	var problems []string
	listen := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == "error" || ev.Type == "warning" || ev.Type == "assert" {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, fmt.Sprintf("console %s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, fmt.Sprintf("exception: %s %s:%d", ev.ExceptionDetails.Text, ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithListener(listen))
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first Do starts the browser (and enables Runtime); Log is the
	// domain of failed loads and CSP violations.
	require.NoError(t, chromedp.Do(ctx))
	_, err = chromedp.Call(ctx, log.Enable, cdp.Empty{})
	require.NoError(t, err)
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// The page a loopback client gets: it loads in a real browser without a
// console error, shows every policy, the Locust run and the live lease as
// bands, the deferral the run causes (and why), the needs-attention list
// on top, and never a credential; the policy page shows its history and
// audit entries.
func TestTimelinePageInBrowser(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	base := w.serve(t)
	ctx, problems := browser(t)

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("timeline"))))
	html := run(t, ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	rows := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("svg#timeline g.row")].map(g => g.dataset.policy)`))
	runBands := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('svg#timeline rect[data-kind="run"]')].map(r => r.closest("g.row").dataset.policy + ":" + r.dataset.name)`))
	leaseBands := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('svg#timeline rect[data-kind="lease"]')].map(r => r.closest("g.row").dataset.policy + ":" + r.dataset.name)`))
	deferrals := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('svg#timeline [data-kind="deferral"]')].map(d => d.closest("g.row").dataset.policy + ":" + d.closest("g.fire").dataset.blockedBy)`))
	slots := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('svg#timeline [data-kind="slot"]')].map(d => d.closest("g.row").dataset.policy)`))
	attention := run(t, ctx, chromedp.Text(chromedp.ID("attention")))
	deferralTable := run(t, ctx, chromedp.Text(chromedp.CSS(`table[data-kind="deferrals"]`)))
	if *screenshots != "" {
		shoot(t, ctx, filepath.Join(*screenshots, "timeline.png"))
	}

	require.Equal(t, []string{"checkout-db", "payments-db", "search-api"}, rows, "one row per policy")
	require.Equal(t, []string{"checkout-db:nightly-load"}, runBands, "the Locust run is a band on the row of the policy it uses")
	require.Equal(t, []string{"search-api:smoke-test"}, leaseBands, "the live lease is a band on the row of the policy it holds")
	require.NotEmpty(t, deferrals, "the run defers checkout-db's fires under it")
	byRun := 0
	for _, d := range deferrals {
		// search-api's fire may fall inside its hour-long lease, depending
		// on the time of day the test runs: then the lease defers it.
		ok := strings.HasPrefix(d, `checkout-db:run "nightly-load"`) || strings.HasPrefix(d, `search-api:lease "smoke-test"`)
		require.True(t, ok, "a deferral names what caused it: %s", d)
		if strings.HasPrefix(d, "checkout-db:") {
			byRun++
		}
	}
	require.Positive(t, byRun, "the run defers checkout-db's fires under it: %v", deferrals)
	require.Contains(t, slots, "checkout-db", "the fires the run leaves free have their slot")
	require.Contains(t, slots, "search-api")
	require.Contains(t, deferralTable, "nightly-load")
	require.Contains(t, attention, "payments-db")
	require.Contains(t, attention, "needs_attention")
	require.NotContains(t, attention, "checkout-db")
	require.Less(t, strings.Index(html, `id="attention"`), strings.Index(html, `id="timeline"`), "the needs-attention list is on top")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`svg#timeline g.row[data-policy="checkout-db"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`table[data-kind="history"]`))))
	policyHTML := run(t, ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	history := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('table[data-kind="history"] tr[data-outcome]')].map(r => r.dataset.outcome)`))
	audit := run(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('table[data-kind="audit"] tr[data-action]')].map(r => r.dataset.action)`))
	if *screenshots != "" {
		shoot(t, ctx, filepath.Join(*screenshots, "timeline-policy.png"))
	}
	require.Equal(t, []string{"succeeded"}, history, "the policy page lists its rotation")
	require.Contains(t, audit, "rotation.started")
	require.Contains(t, audit, "rotation.succeeded")
	require.Contains(t, policyHTML, "nightly-load", "the policy page shows the run that defers it")

	require.Empty(t, problems(), "the pages load without a console error")
	for _, v := range w.values {
		require.NotContains(t, html, v, "a credential value is on the timeline")
		require.NotContains(t, policyHTML, v, "a credential value is on the policy page")
	}
}

// run runs one action of the browser test and returns its value.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err)
	return v
}

func shoot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png := run(t, ctx, chromedp.FullScreenshot(100))
	require.NoError(t, os.WriteFile(path, png, 0o644))
}
