// Command daemonbench measures the daemon at scale (issues 3 and 16):
//
//	-mode lag    -policies N whose slots spread over -spread (10m), with the
//	             in-memory store and the no-op target, on -replicas daemons
//	             (1, or 3 sharing one state database, each with a pool of
//	             its own as a process would have): scheduling lag (rotation
//	             start − planned slot), p50/p99/max, and the fires rotated
//	             twice (policies with more than one rotation of the
//	             measured fire, fire keys with more than one success or
//	             River job).
//	-mode idle   `swarmkey serve` with each of -policies (10000,100000),
//	             none due, beside `serve` with one policy, all at once, for
//	             -duration after every policy is planned: peak RSS, RSS at
//	             the end and CPU time of each process. With -scrape-every,
//	             each serve's /metrics is read that often meanwhile, as
//	             Prometheus would, and each read is measured.
//	-mode load   `swarmkey validate` of -policies policies (in files of
//	             10,000, reached through include:) and of one policy,
//	             rounds alternating: wall time and peak RSS.
//
// Every mode prints a human table and HEADLINE lines (bench/internal/headline)
// for make bench's summary. Run it under scripts/with-postgres (lag, idle).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sys/unix"

	"github.com/swarmkey/swarmkey/bench/internal/headline"
	"github.com/swarmkey/swarmkey/bench/internal/proc"
	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/internal/memstore"
	"github.com/swarmkey/swarmkey/internal/nooptarget"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

func main() {
	mode := flag.String("mode", "lag", "lag, idle or load")
	policies := flag.String("policies", "", "how many policies (idle: a comma-separated list); default 100000 for lag and load, 10000,100000 for idle")
	spread := flag.Duration("spread", 10*time.Minute, "lag: the slots spread over this long (the schedule's period)")
	replicas := flag.Int("replicas", 1, "lag: daemons sharing the state database")
	workers := flag.Int("workers", 20, "lag: rotations at once, per daemon")
	duration := flag.Duration("duration", 10*time.Minute, "idle: how long serve runs once every policy is planned")
	rounds := flag.Int("rounds", 3, "load: rounds")
	binary := flag.String("swarmkey", "bin/swarmkey", "idle, load: the swarmkey binary")
	serveArgs := flag.String("serve-args", "", "idle: extra flags for serve, space-separated")
	scrapeEvery := flag.Duration("scrape-every", 0, "idle: read each serve's /metrics this often while it idles, as Prometheus would (0: never)")
	flag.BoolVar(&keepDatabases, "keep", false, "keep the benchmark's databases, for a look afterwards")
	cpuProfile := flag.String("cpuprofile", "", "lag: write the daemons' CPU profile of the measured period to this file")
	flag.Parse()
	lagProfile = *cpuProfile
	ctx := context.Background()
	switch *mode {
	case "lag":
		lag(ctx, databaseServer(), counts(*policies, "100000")[0], *spread, *replicas, *workers)
	case "idle":
		idle(ctx, databaseServer(), *binary, counts(*policies, "10000,100000"), *duration, strings.Fields(*serveArgs), *scrapeEvery)
	case "load":
		load(*binary, counts(*policies, "100000")[0], *rounds)
	default:
		log.Fatalf("-mode %q: use lag, idle or load", *mode)
	}
}

func databaseServer() string {
	serverURL := os.Getenv("SWARMKEY_TEST_DATABASE_URL")
	if serverURL == "" {
		log.Fatal("run under scripts/with-postgres (SWARMKEY_TEST_DATABASE_URL is not set)")
	}
	return serverURL
}

// counts parses -policies, or def when it is empty.
func counts(flagValue, def string) []int {
	if flagValue == "" {
		flagValue = def
	}
	var out []int
	for _, f := range strings.Split(flagValue, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("-policies %q: give whole numbers of at least 1, separated by commas", flagValue)
		}
		out = append(out, n)
	}
	return out
}

// keepDatabases leaves the databases the benchmark made (-keep).
var keepDatabases bool

// lagProfile is where lag writes the CPU profile of the measured period.
var lagProfile string

func newDatabase(ctx context.Context, serverURL, name string) (string, func()) {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		log.Fatal(err)
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		log.Fatal(err)
	}
	u.Path = "/" + name
	return u.String(), func() {
		if keepDatabases {
			fmt.Fprintf(os.Stderr, "kept database %s\n", name)
			return
		}
		if c, err := pgx.Connect(ctx, serverURL); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
}

// withParam adds a query parameter to a database URL.
func withParam(dbURL, key, value string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		log.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// lag spreads the slots of n policies over one period: every policy fires
// every spread (@every, counted from the epoch, so every fire of a period
// is at its start), and policy i has its own deny window of
// i·(spread−2s)/n from each fire, so its slot is that much after the fire.
// The replicas share the state database, each with a pool of its own, and
// one in-memory store.
func lag(ctx context.Context, serverURL string, n int, spread time.Duration, replicas, workers int) {
	if spread < 10*time.Second || spread%time.Second != 0 {
		log.Fatalf("-spread %s: give whole seconds, at least 10s", spread)
	}
	if replicas < 1 {
		log.Fatal("-replicas: at least 1")
	}
	dbURL, drop := newDatabase(ctx, serverURL, fmt.Sprintf("swarmkey_lag_%d", time.Now().UnixNano()))
	defer drop()
	setup, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		log.Fatal(err)
	}
	defer setup.Close()
	setupDB := state.NewFromPool(setup, state.Options{})
	if _, err := setupDB.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if err := daemon.MigrateRiver(ctx, setup); err != nil {
		log.Fatal(err)
	}

	backend := memstore.NewBackend()
	every, err := schedule.New("@every "+spread.String(), time.UTC)
	if err != nil {
		log.Fatal(err)
	}
	// The last slot is 2 s before the next fire, 1.5 s before its window
	// ends: a rotation later than that misses its fire, which the lag
	// figure then counts as not rotated.
	step := (spread - 2*time.Second) / time.Duration(n)
	set := &daemon.PolicySet{Policies: make(map[string]daemon.Scheduled, n)}
	offsets := make(map[string]time.Duration, n)
	for i := range n {
		name := fmt.Sprintf("lag-%06d", i)
		offset := time.Duration(i) * step
		offsets[name] = offset
		plan := schedule.Timing{Name: name, Schedule: every, Window: spread - 500*time.Millisecond}
		if offset > 0 {
			plan.Deny = []schedule.DenyWindow{{Name: "spread", Schedule: every, Duration: offset}}
		}
		set.Policies[name] = daemon.Scheduled{Plan: &plan, Strategy: "single", Store: "memory", SecretID: name, MaxAttempts: 3,
			Open: func(context.Context) (rotator.Credential, error) {
				return rotator.Credential{Name: name, Strategy: targets.Single, Store: memstore.New(backend), SecretID: name,
					Target: nooptarget.Target{}, Canary: rotator.CanaryRetry{Attempts: 1}}, nil
			}}
	}
	// The policies have handled the fire of the current period, as after a
	// daemon that ran all along: no start-up catch-up burst.
	now := time.Now().UTC()
	current := every.Prev(now)
	states := make([]state.PolicyState, 0, n)
	plans := make([]state.PlanUpdate, 0, n)
	for name := range set.Policies {
		states = append(states, state.PolicyState{Policy: name, Strategy: "single", Store: "memory", SecretID: name})
		plans = append(plans, state.PlanUpdate{Policy: name, PlannedFire: &current, NextCheck: current.Add(spread - 3*time.Second)})
	}
	if err := setupDB.EnsurePolicies(ctx, states); err != nil {
		log.Fatal(err)
	}
	if err := setupDB.UpdatePlans(ctx, plans); err != nil {
		log.Fatal(err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var daemons []*daemon.Daemon
	for r := range replicas {
		// A pool per replica, as a process has: serve's size, and its
		// planning and rotation connections are its own.
		pool, err := pgxpool.New(ctx, withParam(dbURL, "pool_max_conns", "40"))
		if err != nil {
			log.Fatal(err)
		}
		defer pool.Close()
		db := state.NewFromPool(pool, state.Options{})
		defer db.Close()
		// serve's defaults, but for the workers.
		d, err := daemon.New(pool, db, set, daemon.Config{Workers: workers, Logger: logger, ID: fmt.Sprintf("lag-replica-%d", r)})
		if err != nil {
			log.Fatal(err)
		}
		daemons = append(daemons, d)
	}
	started := time.Now()
	for _, d := range daemons {
		if err := d.Start(ctx); err != nil {
			log.Fatal(err)
		}
	}
	// Measure the fires of the next full period that starts at least a
	// minute after start-up (all replicas up, every policy planned).
	measured := every.Next(time.Now().UTC().Add(time.Minute))
	fmt.Printf("%d policies, slots spread over %s from each fire, %d replica(s) of %d workers (started in %s); measuring the fires of %s\n",
		n, spread, replicas, workers, time.Since(started).Round(time.Millisecond), measured.Format(time.TimeOnly))
	postmaster := proc.PostgresPID()
	cpu0, db0 := proc.SelfCPU(), proc.TreeCPU(postmaster)
	time.Sleep(time.Until(measured))
	if lagProfile != "" {
		f, err := os.Create(lagProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		time.Sleep(spread)
		pprof.StopCPUProfile()
		_ = f.Close()
	}
	time.Sleep(time.Until(measured.Add(spread + 75*time.Second)))
	cpu, dbCPU := proc.SelfCPU()-cpu0, proc.TreeCPU(postmaster)-db0
	var wg sync.WaitGroup
	for _, d := range daemons {
		wg.Go(func() {
			stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_ = d.Stop(stopCtx)
		})
	}
	wg.Wait()

	rows, err := setup.Query(ctx, `SELECT policy, started_at FROM rotations WHERE request_key = 'fire:' || policy || ':' || $1`,
		measured.Format(time.RFC3339))
	if err != nil {
		log.Fatal(err)
	}
	var lags []time.Duration
	for rows.Next() {
		var policy string
		var at time.Time
		if err := rows.Scan(&policy, &at); err != nil {
			log.Fatal(err)
		}
		lags = append(lags, at.Sub(measured.Add(offsets[policy])))
	}
	if err := rows.Err(); err != nil {
		log.Fatal(err)
	}
	rows.Close()
	slices.Sort(lags)
	twice := rotatedTwice(ctx, setup, measured, spread)
	var rotations int
	if err := setup.QueryRow(ctx, `SELECT count(*) FROM rotations`).Scan(&rotations); err != nil {
		log.Fatal(err)
	}
	// CPU per rotation does not depend on what else the machine runs (the
	// lag does): the daemons' and, under scripts/with-postgres, the state
	// database server's.
	fmt.Printf("%d rotations in all; CPU per rotation: daemons %s", rotations, perRotation(cpu, rotations))
	if postmaster != 0 {
		fmt.Printf(", state database %s", perRotation(dbCPU, rotations))
	}
	fmt.Println()

	fmt.Printf("rotations of that period: %d of %d\n", len(lags), n)
	if len(lags) == 0 {
		log.Fatal("no rotation of the measured period")
	}
	p99 := pct(lags, 99)
	fmt.Printf("lag (rotation start − planned slot): p50 %s  p99 %s  max %s\n",
		pct(lags, 50).Round(time.Millisecond), p99.Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
	fmt.Printf("fires rotated twice: %d policies with two rotations of the period, %d fire keys with two successes, %d with two River jobs\n",
		twice.policies, twice.keys, twice.jobs)

	conditions := fmt.Sprintf("%s policies over %s", thousands(n), spreadName(spread))
	if replicas > 1 {
		conditions += fmt.Sprintf(", %d replicas", replicas)
	}
	all := len(lags) == n
	measuredLag := fmt.Sprintf("%s (p50 %s, max %s)", p99.Round(time.Millisecond), pct(lags, 50).Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
	if !all {
		measuredLag += fmt.Sprintf("; only %d of %d rotated", len(lags), n)
	}
	headline.Print(headline.Figure{Name: "scheduling lag p99, " + conditions, Aim: "< 1 s", Measured: measuredLag, Pass: all && p99 < time.Second})
	if replicas > 1 {
		total := twice.policies + twice.keys + twice.jobs
		headline.Print(headline.Figure{Name: "fires rotated twice, " + conditions, Aim: "0", Measured: strconv.Itoa(total), Pass: total == 0})
	}
}

type doubles struct{ policies, keys, jobs int }

// rotatedTwice counts what would show a fire rotated twice: a policy with
// more than one rotation started in the measured period (its one fire and
// the time a late job may take), a fire key with more than one succeeded
// rotation, a fire key with more than one River job.
func rotatedTwice(ctx context.Context, pool *pgxpool.Pool, period time.Time, spread time.Duration) doubles {
	var d doubles
	err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT policy FROM rotations
		WHERE started_at >= $1 AND started_at < $2 AND outcome <> 'failed'
		GROUP BY policy HAVING count(*) > 1) AS t`, period, period.Add(spread)).Scan(&d.policies)
	if err == nil {
		err = pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT request_key FROM rotations
			WHERE request_key LIKE 'fire:%' AND outcome = 'succeeded' GROUP BY request_key HAVING count(*) > 1) AS t`).Scan(&d.keys)
	}
	if err == nil {
		err = pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT args->>'policy', args->>'key', args->>'missed_asap' FROM river_job
			WHERE kind = 'swarmkey_rotate' GROUP BY 1, 2, 3 HAVING count(*) > 1) AS t`).Scan(&d.jobs)
	}
	if err != nil {
		log.Fatal(err)
	}
	return d
}

func pct(ds []time.Duration, p int) time.Duration {
	return ds[min(max((len(ds)*p+99)/100-1, 0), len(ds)-1)]
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func spreadName(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}

// idle runs serve with each count of policies and with one, side by side,
// and reports each process's peak RSS, RSS at the end and CPU time over d,
// measured from when the process has planned every policy (start-up:
// migrations, reading and checking the config, the first plan of every
// policy, is not idle).
func idle(ctx context.Context, serverURL, binary string, ns []int, d time.Duration, serveArgs []string, scrapeEvery time.Duration) {
	type result struct {
		policies       int
		peakKiB        int
		endKiB         int
		cpu            time.Duration
		startup        time.Duration
		startupPeakKiB int
		// scrapes are the reads of /metrics while it idled (-scrape-every).
		scrapes []scrape
		// peakAnonKiB is the most private memory (RssAnon) seen, sampled
		// every 20 ms; fileKiB the executable's and libraries' pages
		// (RssFile) at the end. VmHWM counts both, and the file pages
		// depend on what the page cache holds of the binary: a binary
		// just built is all cached, and each fault then maps the pages
		// around it too.
		peakAnonKiB, fileKiB int
	}
	ns = append([]int{1}, ns...)
	results := make([]result, len(ns))
	// Every serve starts with the binary out of the page cache, as at
	// boot: its resident file pages are then those it touches and their
	// readahead. Left in the cache, they depend on how the file came
	// there, which changes how many pages each fault maps: one serve of
	// one policy showed 34 MiB of the binary started cold and 49 MiB
	// after the file had been read whole (cat, a copy, a checksum).
	var prepared sync.WaitGroup
	prepared.Add(len(ns))
	start := make(chan struct{})
	go func() {
		prepared.Wait()
		if err := evictFromPageCache(binary); err != nil {
			log.Fatal(err)
		}
		close(start)
	}()
	var wg sync.WaitGroup
	for i, count := range ns {
		wg.Go(func() {
			dbURL, drop := newDatabase(ctx, serverURL, fmt.Sprintf("swarmkey_idle_%d_%d", count, time.Now().UnixNano()))
			defer drop()
			dir, err := os.MkdirTemp("", "swarmkey-idle")
			if err != nil {
				log.Fatal(err)
			}
			defer os.RemoveAll(dir)
			cfg := writeConfig(dir, count, true)
			if out, err := exec.Command(binary, "keygen", filepath.Join(dir, "secrets.key")).CombinedOutput(); err != nil {
				log.Fatalf("keygen: %v: %s", err, out)
			}
			args := append([]string{"serve", "--config", cfg, "--log-level", "warn"}, serveArgs...)
			metricsURL := ""
			if scrapeEvery > 0 {
				addr := freeLoopbackAddress()
				args = append(args, "--http-listen", addr)
				metricsURL = "http://" + addr + "/metrics"
			}
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), "SWARMKEY_DATABASE_URL="+dbURL, "IDLE_ADMIN_URL="+dbURL)
			cmd.Stderr = os.Stderr
			prepared.Done()
			<-start
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				log.Fatal(err)
			}
			var peakAnon atomic.Int64
			sampled := make(chan struct{})
			stopSampling := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					peakAnon.Store(max(peakAnon.Load(), int64(proc.StatusKiB(cmd.Process.Pid, "RssAnon:"))))
					select {
					case <-stopSampling:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			defer func() {
				_ = cmd.Process.Signal(os.Interrupt)
				_ = cmd.Wait()
			}()
			if err := waitPlanned(ctx, dbURL, count, 5*time.Minute); err != nil {
				log.Fatalf("serve with %d policies: %v", count, err)
			}
			r := result{policies: count, startup: time.Since(t0), startupPeakKiB: proc.StatusKiB(cmd.Process.Pid, "VmHWM:")}
			cpu0 := proc.CPU(cmd.Process.Pid)
			end := time.Now().Add(d)
			nextScrape := time.Now()
			for time.Now().Before(end) {
				if metricsURL != "" && !time.Now().Before(nextScrape) {
					r.scrapes = append(r.scrapes, scrapeOnce(metricsURL, cmd.Process.Pid))
					nextScrape = nextScrape.Add(scrapeEvery)
				}
				time.Sleep(time.Second)
			}
			r.peakKiB, r.endKiB, r.cpu = proc.StatusKiB(cmd.Process.Pid, "VmHWM:"), proc.StatusKiB(cmd.Process.Pid, "VmRSS:"), proc.CPU(cmd.Process.Pid)-cpu0
			r.fileKiB = proc.StatusKiB(cmd.Process.Pid, "RssFile:")
			close(stopSampling)
			<-sampled
			r.peakAnonKiB = int(peakAnon.Load())
			results[i] = r
		})
	}
	wg.Wait()
	fmt.Printf("serve, idle for %s once every policy is planned (%d policies in files of %s, include:d)\n", d, len(ns), thousands(perFile))
	fmt.Printf("%-10s %12s %16s %14s %12s %14s %14s %12s %16s\n", "policies", "start-up", "peak at start-up", "peak RSS", "RSS at end",
		"peak private", "file at end", "CPU", "share of a core")
	for _, r := range results {
		fmt.Printf("%-10s %12s %12.1f MiB %10.1f MiB %8.1f MiB %10.1f MiB %10.1f MiB %12s %15.2f%%\n", thousands(r.policies), r.startup.Round(time.Second),
			mib(r.startupPeakKiB), mib(r.peakKiB), mib(r.endKiB), mib(r.peakAnonKiB), mib(r.fileKiB), r.cpu.Round(10*time.Millisecond), share(r.cpu, d))
	}
	if scrapeEvery > 0 {
		fmt.Printf("/metrics read every %s while idle (included in CPU above): medians per read\n", scrapeEvery)
		fmt.Printf("%-10s %8s %12s %12s %14s %10s\n", "policies", "reads", "wall", "serve CPU", "size", "series")
		for _, r := range results {
			sc := medianScrape(r.scrapes)
			fmt.Printf("%-10s %8d %12s %12s %10.1f MiB %10d\n", thousands(r.policies), len(r.scrapes), sc.wall.Round(time.Millisecond),
				sc.cpu.Round(10*time.Millisecond), float64(sc.bytes)/(1<<20), sc.series)
		}
	}
	fmt.Println("(peak RSS includes start-up: reading and checking the config of every policy, the first plan of each;")
	fmt.Println(" private is RssAnon, sampled every 20 ms; file is RssFile, the binary's pages, which depend on how much of it the page cache holds)")
	base := results[0]
	for _, r := range results[1:] {
		name := "serve with " + thousands(r.policies) + " policies"
		switch r.policies {
		case 10000:
			headline.Print(headline.Figure{Name: "peak RSS, " + name, Aim: "< 64 MiB",
				Measured: fmt.Sprintf("%.1f MiB (1 policy: %.1f MiB; private peak %.1f MiB, binary's pages %.1f MiB)",
					mib(r.peakKiB), mib(base.peakKiB), mib(r.peakAnonKiB), mib(r.fileKiB)),
				Ratio: ratio(r.peakKiB, base.peakKiB), Pass: mib(r.peakKiB) < 64})
		case 100000:
			headline.Print(headline.Figure{Name: "peak RSS, " + name, Aim: "< 300 MiB",
				Measured: fmt.Sprintf("%.1f MiB (1 policy: %.1f MiB; private peak %.1f MiB, binary's pages %.1f MiB)",
					mib(r.peakKiB), mib(base.peakKiB), mib(r.peakAnonKiB), mib(r.fileKiB)),
				Ratio: ratio(r.peakKiB, base.peakKiB), Pass: mib(r.peakKiB) < 300})
			figure, measured := "idle CPU, "+name+", "+d.String(), fmt.Sprintf("%.2f%% (1 policy: %.2f%%)", share(r.cpu, d), share(base.cpu, d))
			if scrapeEvery > 0 {
				sc := medianScrape(r.scrapes)
				figure += ", /metrics read every " + scrapeEvery.String()
				measured += fmt.Sprintf("; a read: %s of serve's CPU, %.1f MiB, %d series", sc.cpu.Round(10*time.Millisecond),
					float64(sc.bytes)/(1<<20), sc.series)
			}
			headline.Print(headline.Figure{Name: figure, Aim: "< 1% of a core",
				Measured: measured,
				Ratio:    ratio(int(r.cpu), int(base.cpu)), Pass: share(r.cpu, d) < 1})
		}
	}
}

// scrape is one read of serve's /metrics: its wall time, the CPU serve
// spent meanwhile (its own clock ticks, so 10 ms steps), the size of the
// answer and its number of series.
type scrape struct {
	wall, cpu time.Duration
	bytes     int
	series    int
}

// scrapeClient reads /metrics within Prometheus's default scrape timeout.
var scrapeClient = &http.Client{Timeout: 10 * time.Second}

// scrapeOnce reads metricsURL as Prometheus would and measures the read.
func scrapeOnce(metricsURL string, pid int) scrape {
	cpu0, t0 := proc.CPU(pid), time.Now()
	resp, err := scrapeClient.Get(metricsURL)
	if err != nil {
		log.Fatalf("read %s: %v", metricsURL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		log.Fatalf("read %s: %s %v", metricsURL, resp.Status, err)
	}
	sc := scrape{wall: time.Since(t0), cpu: proc.CPU(pid) - cpu0, bytes: len(body)}
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, "#") {
			sc.series++
		}
	}
	return sc
}

// medianScrape is the median of each measure of scrapes, taken apart.
func medianScrape(scrapes []scrape) scrape {
	if len(scrapes) == 0 {
		return scrape{}
	}
	pick := func(get func(scrape) int64) int64 {
		xs := make([]int64, len(scrapes))
		for i, sc := range scrapes {
			xs[i] = get(sc)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	return scrape{
		wall:   time.Duration(pick(func(sc scrape) int64 { return int64(sc.wall) })),
		cpu:    time.Duration(pick(func(sc scrape) int64 { return int64(sc.cpu) })),
		bytes:  int(pick(func(sc scrape) int64 { return int64(sc.bytes) })),
		series: int(pick(func(sc scrape) int64 { return int64(sc.series) })),
	}
}

// freeLoopbackAddress is a TCP address on 127.0.0.1 that nothing listens
// on now: the kernel's pick for a listener opened and closed at once.
func freeLoopbackAddress() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func mib(kib int) float64 { return float64(kib) / 1024 }

func share(cpu, d time.Duration) float64 { return 100 * cpu.Seconds() / d.Seconds() }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// waitPlanned waits until serve has recorded all n policies and planned
// each once (none is due), within limit.
func waitPlanned(ctx context.Context, dbURL string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			continue
		}
		var total, due int
		err = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE next_check IS NULL OR next_check <= now()) FROM policy_state`).Scan(&total, &due)
		conn.Close(ctx)
		if err == nil && total == n && due == 0 {
			return nil
		}
	}
	return errors.New("not every policy was planned in time")
}

// perFile is how many policies one file holds: more go in further files,
// reached through include: (a file is at most 8 MiB).
const perFile = 10000

// evictFromPageCache drops the cached pages of the file at path that no
// process maps, written back first (a binary just built may still be
// dirty, and dirty pages stay).
func evictFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("evict %s from the page cache: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("evict %s from the page cache: %w", path, err)
	}
	return nil
}

// writeConfig writes n PostgreSQL policies, in files of perFile, and the
// main file that includes them. idle's policies all fire twelve hours from
// now; load's spread over the day.
func writeConfig(dir string, n int, idle bool) string {
	at := time.Now().UTC().Add(12 * time.Hour)
	var files []string
	for f := 0; f*perFile < n; f++ {
		var b strings.Builder
		b.WriteString("policies:\n")
		for i := f * perFile; i < min(n, (f+1)*perFile); i++ {
			minute, hour := at.Minute(), at.Hour()
			if !idle {
				minute, hour = i%60, i/60%24
			}
			fmt.Fprintf(&b, `  - name: idle-%06d
    strategy: single
    schedule: "%d %d * * *"
    target:
      postgres: { host: 127.0.0.1, port: 1, dbname: none, username: idle_%06d, admin: "env:IDLE_ADMIN_URL" }
`, i, minute, hour, i)
		}
		name := fmt.Sprintf("policies-%03d.yaml", f)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o600); err != nil {
			log.Fatal(err)
		}
		files = append(files, name)
	}
	main := "database: env:SWARMKEY_DATABASE_URL\nstores:\n  file:\n    dir: secrets\n    key_file: secrets.key\ninclude:\n"
	for _, f := range files {
		main += "  - " + f + "\n"
	}
	path := filepath.Join(dir, "swarmkey.yaml")
	if err := os.WriteFile(path, []byte(main), 0o600); err != nil {
		log.Fatal(err)
	}
	return path
}

// load times `swarmkey validate` of n policies and of one, rounds
// alternating, and reports the median wall time and the peak RSS of each.
func load(binary string, n, rounds int) {
	dir, err := os.MkdirTemp("", "swarmkey-load")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	type sample struct {
		wall   []time.Duration
		peakKB int64
	}
	sizes := []int{1, n}
	configs := make([]string, len(sizes))
	for i, count := range sizes {
		sub := filepath.Join(dir, strconv.Itoa(count))
		if err := os.Mkdir(sub, 0o700); err != nil {
			log.Fatal(err)
		}
		configs[i] = writeConfig(sub, count, false)
	}
	samples := make([]sample, len(sizes))
	for range rounds {
		for i := range sizes {
			cmd := exec.Command(binary, "validate", configs[i])
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			wall := time.Since(t0)
			if err != nil {
				log.Fatalf("validate of %d policies: %v: %s", sizes[i], err, out)
			}
			samples[i].wall = append(samples[i].wall, wall)
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				samples[i].peakKB = max(samples[i].peakKB, ru.Maxrss) // KiB on Linux
			}
		}
	}
	fmt.Printf("swarmkey validate (config load and checks; files of %s policies, include:d), median of %d rounds\n", thousands(perFile), rounds)
	fmt.Printf("%-10s %12s %14s\n", "policies", "wall", "peak RSS")
	for i, s := range samples {
		slices.Sort(s.wall)
		fmt.Printf("%-10s %12s %10.1f MiB\n", thousands(sizes[i]), s.wall[len(s.wall)/2].Round(time.Millisecond), mib(int(s.peakKB)))
	}
	big, one := samples[1], samples[0]
	median := big.wall[len(big.wall)/2]
	headline.Print(headline.Figure{Name: "config load (swarmkey validate), " + thousands(n) + " policies", Aim: "< 3 s",
		Measured: fmt.Sprintf("%.2f s, peak RSS %.0f MiB (1 policy: %.2f s)", median.Seconds(), mib(int(big.peakKB)), one.wall[len(one.wall)/2].Seconds()),
		Pass:     median < 3*time.Second})
}

func perRotation(cpu time.Duration, rotations int) string {
	if rotations == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(cpu.Microseconds())/1000/float64(rotations))
}
