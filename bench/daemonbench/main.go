// Command daemonbench measures the daemon (issue 3's benchmarks):
//
//	-mode lag    10,000 policies whose slots fall within one minute, with the
//	             in-memory store and the no-op target: scheduling lag
//	             (rotation start − planned slot), p50/p99.
//	-mode idle   `swarmkey serve` with 10,000 policies, none due, for
//	             -duration: peak RSS and CPU seconds, beside `serve` with one
//	             policy run at the same time (the baseline).
//
// Run it under scripts/with-postgres (make bench-daemon).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swarmkey/swarmkey/daemon"
	"github.com/swarmkey/swarmkey/internal/memstore"
	"github.com/swarmkey/swarmkey/internal/nooptarget"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets"
)

func main() {
	mode := flag.String("mode", "lag", "lag or idle")
	policies := flag.Int("policies", 10000, "how many policies")
	duration := flag.Duration("duration", 10*time.Minute, "idle: how long serve runs")
	binary := flag.String("swarmkey", "bin/swarmkey", "idle: the swarmkey binary")
	workers := flag.Int("workers", 20, "lag: rotations at once")
	serveArgs := flag.String("serve-args", "", "idle: extra flags for serve, space-separated")
	flag.Parse()
	serverURL := os.Getenv("SWARMKEY_TEST_DATABASE_URL")
	if serverURL == "" {
		log.Fatal("run under scripts/with-postgres (make bench-daemon)")
	}
	ctx := context.Background()
	switch *mode {
	case "lag":
		lag(ctx, serverURL, *policies, *workers)
	case "idle":
		idle(ctx, serverURL, *binary, *policies, *duration, strings.Fields(*serveArgs))
	default:
		log.Fatalf("-mode %q: use lag or idle", *mode)
	}
}

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
		if c, err := pgx.Connect(ctx, serverURL); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
}

// lag spreads the slots of n policies over one minute: every policy fires
// every minute, and policy i has its own deny window of i·(59s/n) from each
// fire, so its slot is that much after the fire.
func lag(ctx context.Context, serverURL string, n, workers int) {
	dbURL, drop := newDatabase(ctx, serverURL, fmt.Sprintf("swarmkey_lag_%d", time.Now().Unix()))
	defer drop()
	pool, err := pgxpool.New(ctx, dbURL+"&pool_max_conns=40")
	if err != nil {
		log.Fatal(err)
	}
	db := state.NewFromPool(pool, state.Options{})
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if err := daemon.MigrateRiver(ctx, pool); err != nil {
		log.Fatal(err)
	}

	backend := memstore.NewBackend()
	every := schedule.MustParse("* * * * *", "UTC")
	step := 59 * time.Second / time.Duration(n)
	set := &daemon.PolicySet{Policies: map[string]daemon.Scheduled{}}
	offsets := map[string]time.Duration{}
	for i := range n {
		name := fmt.Sprintf("lag-%05d", i)
		offset := time.Duration(i) * step
		offsets[name] = offset
		plan := schedule.Timing{Name: name, Schedule: every, Window: 59*time.Second + 500*time.Millisecond}
		if offset > 0 {
			plan.Deny = []schedule.DenyWindow{{Name: "spread", Schedule: every, Duration: offset}}
		}
		set.Policies[name] = daemon.Scheduled{Plan: plan, Strategy: "single", Store: "memory", SecretID: name, MaxAttempts: 3,
			Open: func(context.Context) (rotator.Credential, error) {
				return rotator.Credential{Name: name, Strategy: targets.Single, Store: memstore.New(backend), SecretID: name,
					Target: nooptarget.Target{}, Canary: rotator.CanaryRetry{Attempts: 1}}, nil
			}}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// serve's defaults, but for the workers.
	d, err := daemon.New(pool, db, set, daemon.Config{Workers: workers, Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	// The policies have handled the fire of the current minute, as after a
	// daemon that ran all along: no start-up catch-up burst.
	now := time.Now().UTC()
	current := now.Truncate(time.Minute)
	var states []state.PolicyState
	var plans []state.PlanUpdate
	for name := range set.Policies {
		states = append(states, state.PolicyState{Policy: name, Strategy: "single", Store: "memory", SecretID: name})
		plans = append(plans, state.PlanUpdate{Policy: name, PlannedFire: &current, NextCheck: current.Add(time.Minute - 3*time.Second)})
	}
	if err := db.EnsurePolicies(ctx, states); err != nil {
		log.Fatal(err)
	}
	if err := db.UpdatePlans(ctx, plans); err != nil {
		log.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Measure the fires of the next full minute (at least 20s away, so the
	// daemon is up).
	measured := now.Add(20 * time.Second).Truncate(time.Minute).Add(time.Minute)
	fmt.Printf("%d policies, slots spread over 59s from each minute; measuring the fires of %s\n", n, measured.Format(time.TimeOnly))
	time.Sleep(time.Until(measured.Add(75 * time.Second)))
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_ = d.Stop(stopCtx)
	cancel()

	rows, err := pool.Query(ctx, `SELECT policy, started_at FROM rotations WHERE request_key = 'fire:' || policy || ':' || $1`,
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
	rows.Close()
	slices.Sort(lags)
	if len(lags) == 0 {
		log.Fatal("no rotation of the measured minute")
	}
	fmt.Printf("rotations of that minute: %d of %d\n", len(lags), n)
	fmt.Printf("lag (rotation start − planned slot): p50 %s  p99 %s  max %s\n",
		pct(lags, 50), pct(lags, 99), lags[len(lags)-1].Round(time.Millisecond))
}

func pct(ds []time.Duration, p int) string {
	i := min(max((len(ds)*p+99)/100-1, 0), len(ds)-1)
	return ds[i].Round(time.Millisecond).String()
}

// idle runs serve with n policies and with one, side by side, for d, and
// reports each process's peak RSS and CPU time.
func idle(ctx context.Context, serverURL, binary string, n int, d time.Duration, serveArgs []string) {
	type result struct {
		policies int
		peakKiB  int
		endKiB   int
		cpu      time.Duration
	}
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i, count := range []int{1, n} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbURL, drop := newDatabase(ctx, serverURL, fmt.Sprintf("swarmkey_idle_%d_%d", count, time.Now().UnixNano()))
			defer drop()
			dir, err := os.MkdirTemp("", "swarmkey-idle")
			if err != nil {
				log.Fatal(err)
			}
			defer os.RemoveAll(dir)
			cfg := writeIdleConfig(dir, count)
			if out, err := exec.Command(binary, "keygen", filepath.Join(dir, "secrets.key")).CombinedOutput(); err != nil {
				log.Fatalf("keygen: %v: %s", err, out)
			}
			cmd := exec.Command(binary, append([]string{"serve", "--config", cfg, "--log-level", "warn"}, serveArgs...)...)
			cmd.Env = append(os.Environ(), "SWARMKEY_DATABASE_URL="+dbURL, "IDLE_ADMIN_URL="+dbURL)
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				log.Fatal(err)
			}
			// Startup (migrations, the first planning of every policy) is
			// not idle: measure from when the first plan is done.
			time.Sleep(30 * time.Second)
			cpu0 := cpuTime(cmd.Process.Pid)
			peak := 0
			end := time.Now().Add(d)
			for time.Now().Before(end) {
				peak = max(peak, rss(cmd.Process.Pid, "VmHWM:"))
				time.Sleep(time.Second)
			}
			results[i] = result{policies: count, peakKiB: peak, endKiB: rss(cmd.Process.Pid, "VmRSS:"), cpu: cpuTime(cmd.Process.Pid) - cpu0}
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}()
	}
	wg.Wait()
	fmt.Printf("serve, idle for %s after a 30s start-up\n", d)
	fmt.Printf("%-10s %14s %14s %12s %14s\n", "policies", "peak RSS", "RSS at end", "CPU", "share of a core")
	for _, r := range results {
		fmt.Printf("%-10d %10.1f MiB %10.1f MiB %12s %13.2f%%\n", r.policies, float64(r.peakKiB)/1024, float64(r.endKiB)/1024,
			r.cpu.Round(10*time.Millisecond), 100*r.cpu.Seconds()/d.Seconds())
	}
	fmt.Println("(peak RSS includes start-up: reading and checking the config of every policy)")
}

// writeIdleConfig writes n policies that all fire twelve hours from now.
func writeIdleConfig(dir string, n int) string {
	at := time.Now().UTC().Add(12 * time.Hour)
	var b strings.Builder
	fmt.Fprintf(&b, "database: env:SWARMKEY_DATABASE_URL\nstores:\n  file:\n    dir: secrets\n    key_file: secrets.key\npolicies:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - name: idle-%05d
    strategy: single
    schedule: "%d %d * * *"
    target:
      postgres: { host: 127.0.0.1, port: 1, dbname: none, username: idle_%05d, admin: "env:IDLE_ADMIN_URL" }
`, i, at.Minute(), at.Hour(), i)
	}
	path := filepath.Join(dir, "swarmkey.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		log.Fatal(err)
	}
	return path
}

// rss reads a memory line of /proc/PID/status (VmHWM: peak, VmRSS: now),
// in KiB.
func rss(pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kib
		}
	}
	return 0
}

// cpuTime is utime+stime of pid.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ")".
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}
