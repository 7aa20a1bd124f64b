// Command rotationbench measures rotations per second of the postgres target
// with the file store, beside a baseline that does only the same SQL work
// (set the SCRAM verifier with ALTER ROLE, open a new SCRAM connection,
// SELECT 1), at several concurrencies (distinct policies and roles), in the
// same run against the same server. It also reports the file store's write
// latency (PutPending, Promote) p50/p99.
//
// Beside them it measures a crash-safe floor: the baseline's SQL work plus
// what any rotation that survives a crash at every step must do at least
// (an intent row and one durable record after each step that changes
// something, five commits, and the store's two durable writes, with no
// reads). The aim is against the baseline; the floor says how much of the
// gap is crash safety itself and how much is swarmkey's own.
//
// Rounds alternate baseline, floor and swarmkey so that drift on a shared
// machine hits all three, each round starting with the next of them, and
// the database is vacuumed before each measurement so that no side pays
// for another's dead rows; the figures are medians over rounds. Run it with
// `make bench`.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swarmkey/swarmkey/app"
	"github.com/swarmkey/swarmkey/bench/internal/cpuprofile"
	"github.com/swarmkey/swarmkey/bench/internal/headline"
	"github.com/swarmkey/swarmkey/bench/internal/pglogin"
	"github.com/swarmkey/swarmkey/bench/internal/proc"
	"github.com/swarmkey/swarmkey/config"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// hogVariable, set to 1, makes the program a CPU-bound process and nothing
// else: the load that -load puts beside the benchmark.
const hogVariable = "SWARMKEY_BENCH_HOG"

// hogSpins is what a hog counts, so its loop is work, not an empty spin.
var hogSpins atomic.Uint64

// aimRatio is issue 16's aim for swarmkey's rate against the baseline's.
const aimRatio = 0.85

func main() {
	if os.Getenv(hogVariable) == "1" {
		for {
			hogSpins.Add(1)
		}
	}
	var (
		duration     = flag.Duration("duration", 5*time.Second, "length of one measurement")
		rounds       = flag.Int("rounds", 3, "rounds per concurrency (medians are reported)")
		concurrency  = flag.String("concurrency", "1,4", "comma-separated concurrencies")
		loads        = flag.String("load", "0,1", "comma-separated counts of CPU-bound processes of our own to run beside the benchmark (0: none)")
		storeSamples = flag.Int("store-samples", 400, "file store writes to time")
		profileFor   = flag.Duration("profile", 5*time.Second, "how long the per-step profile runs each side (0: no profile)")
		cpuProfile   = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	)
	flag.Parse()
	stopProfile, err := cpuprofile.Start(*cpuProfile)
	if err != nil {
		log.Fatal(err)
	}
	defer stopProfile()
	serverURL := os.Getenv("SWARMKEY_TEST_DATABASE_URL")
	port, _ := strconv.Atoi(os.Getenv("SWARMKEY_TEST_POSTGRES_PORT"))
	if serverURL == "" || port == 0 {
		log.Fatal("run under scripts/with-postgres (make bench): SWARMKEY_TEST_DATABASE_URL and SWARMKEY_TEST_POSTGRES_PORT are needed")
	}
	concurrencies, err := positiveList("-concurrency", *concurrency, 1)
	if err != nil {
		log.Fatal(err)
	}
	hogCounts, err := positiveList("-load", *loads, 0)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	env, err := newEnvironment(ctx, serverURL, port)
	if err != nil {
		log.Fatal(err)
	}
	defer env.close()

	workers := map[int][]*worker{}
	for _, c := range concurrencies {
		if workers[c], err = env.workers(ctx, c); err != nil {
			log.Fatal(err)
		}
	}
	for _, hogs := range hogCounts {
		condition := "quiet"
		if hogs > 0 {
			condition = fmt.Sprintf("under load: %d CPU-bound process(es) of ours beside it", hogs)
		}
		stop, err := startHogs(hogs)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("rotations per second, postgres target + file store vs. baseline SQL work (median of %d rounds of %s), %s\n", *rounds, *duration, condition)
		fmt.Printf("%-12s %12s %12s %12s %8s %8s   %s\n", "concurrency", "baseline/s", "floor/s", "swarmkey/s", "ratio", "vs floor",
			"CPU per operation, this process + PostgreSQL's: baseline, crash-safe floor, swarmkey")
		for _, c := range concurrencies {
			var base, floor, sk, ratios, floorRatios, baseCPU, floorCPU, skCPU []float64
			for round := range *rounds {
				var b, bc, f, fc, s, sc float64
				sides := []struct {
					rate, cpu *float64
					op        func(worker int) error
				}{
					{&b, &bc, func(i int) error { return workers[c][i].baseline(ctx) }},
					{&f, &fc, func(i int) error { return workers[c][i].crashSafeFloor(ctx) }},
					{&s, &sc, func(i int) error { return workers[c][i].rotate(ctx) }},
				}
				// Each round starts with the next side, so that no side always
				// follows the same other.
				for k := range sides {
					side := sides[(round+k)%len(sides)]
					*side.rate, *side.cpu = env.measure(ctx, c, *duration, side.op)
				}
				base, floor, sk = append(base, b), append(floor, f), append(sk, s)
				ratios, floorRatios = append(ratios, s/b), append(floorRatios, s/f)
				baseCPU, floorCPU, skCPU = append(baseCPU, bc), append(floorCPU, fc), append(skCPU, sc)
			}
			fmt.Printf("%-12d %12.1f %12.1f %12.1f %8.2f %8.2f   %.2f ms, %.2f ms, %.2f ms\n", c, median(base), median(floor), median(sk),
				median(ratios), median(floorRatios), median(baseCPU), median(floorCPU), median(skCPU))
			name := fmt.Sprintf("rotations/s, concurrency %d", c)
			if hogs > 0 {
				name += fmt.Sprintf(", under load (%d CPU-bound)", hogs)
			}
			headline.Print(headline.Figure{Name: name, Aim: fmt.Sprintf("ratio ≥ %.2f", aimRatio),
				Measured: fmt.Sprintf("%.1f/s vs baseline %.1f/s (crash-safe floor %.1f/s: ratio %.2f)", median(sk), median(base), median(floor), median(floorRatios)),
				Ratio:    median(ratios), Pass: median(ratios) >= aimRatio})
		}
		stop()
		fmt.Println()
	}

	stepTimes.print()

	if *profileFor > 0 {
		if err := env.profile(ctx, *profileFor); err != nil {
			log.Fatal(err)
		}
	}

	put, promote, err := env.storeLatency(ctx, *storeSamples)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\nfile store latency over %d writes (fsync on; %s)\n", *storeSamples, env.dir)
	fmt.Printf("%-12s %10s %10s\n", "operation", "p50", "p99")
	fmt.Printf("%-12s %10s %10s\n", "PutPending", pct(put, 50), pct(put, 99))
	fmt.Printf("%-12s %10s %10s\n", "Promote", pct(promote, 50), pct(promote, 99))
}

// positiveList parses a comma-separated list of numbers of at least least.
func positiveList(flagName, list string, least int) ([]int, error) {
	var out []int
	for _, field := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < least {
			return nil, fmt.Errorf("%s: %q is not a number of at least %d", flagName, field, least)
		}
		out = append(out, n)
	}
	return out, nil
}

// startHogs starts n CPU-bound processes (this program, as a hog) and
// returns what stops them.
func startHogs(n int) (stop func(), err error) {
	var hogs []*exec.Cmd
	stop = func() {
		for _, h := range hogs {
			_ = h.Process.Kill()
			_ = h.Wait()
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for range n {
		h := exec.Command(self)
		h.Env = append(os.Environ(), hogVariable+"=1")
		if err := h.Start(); err != nil {
			stop()
			return nil, err
		}
		hogs = append(hogs, h)
	}
	return stop, nil
}

// adminURLVariable holds the benchmark database's superuser URL: the
// policies' admin reference reads it, as a real config reads env:NAME.
const adminURLVariable = "SWARMKEY_BENCH_ADMIN_URL"

type environment struct {
	dbName, dbURL string
	serverURL     string
	port          int
	pool          *pgxpool.Pool
	state         *state.DB
	files         *file.Store
	dir           string
	rot           *rotator.Rotator
	// runtimes are the loaded configs of the workers, closed at the end.
	runtimes []*app.Runtime
}

func newEnvironment(ctx context.Context, serverURL string, port int) (*environment, error) {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	name := "swarmkey_bench_" + randomHex(4)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, err
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		return nil, err
	}
	state := state.NewFromPool(pool, state.Options{})
	if _, err := state.Migrate(ctx); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_floor (token uuid PRIMARY KEY, role text NOT NULL, step text NOT NULL)`); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "swarmkey-bench")
	if err != nil {
		return nil, err
	}
	key := filepath.Join(dir, "key")
	if err := file.GenerateKey(key); err != nil {
		return nil, err
	}
	files, err := file.Open(file.Options{Dir: filepath.Join(dir, "secrets"), KeyFile: key})
	if err != nil {
		return nil, err
	}
	if err := os.Setenv(adminURLVariable, u.String()); err != nil {
		return nil, err
	}
	return &environment{dbName: name, dbURL: u.String(), serverURL: serverURL, port: port, pool: pool, state: state,
		files: files, dir: dir, rot: rotator.New(state, rotator.Config{})}, nil
}

func (env *environment) close() {
	for _, rt := range env.runtimes {
		rt.Close()
	}
	env.files.Close()
	env.pool.Close()
	os.RemoveAll(env.dir)
	ctx := context.Background()
	if admin, err := pgx.Connect(ctx, env.serverURL); err == nil {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+env.dbName+" WITH (FORCE)")
		admin.Close(ctx)
	}
}

// worker owns one role and one policy, so workers never contend on a lock.
type worker struct {
	env    *environment
	role   string
	policy rotator.Credential
	admin  *pgx.Conn
	// floorCurrent is the file store's current version of the crash-safe
	// floor's secret.
	floorCurrent string
}

// workers creates n roles and builds their policies the way swarmkey does:
// a config file, loaded and opened through app, as serve and rotate do.
func (env *environment) workers(ctx context.Context, n int) ([]*worker, error) {
	return env.workersAt(ctx, n, env.port, adminURLVariable, env.dbURL)
}

// workersAt is workers whose credentials log in at loginPort and whose
// admin URL is in the variable adminVar (holding adminURL).
func (env *environment) workersAt(ctx context.Context, n, loginPort int, adminVar, adminURL string) ([]*worker, error) {
	var roles []string
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "database: env:%s\nstores:\n  file:\n    dir: %s\n    key_file: %s\npolicies:\n", adminURLVariable, filepath.Join(env.dir, "secrets"), filepath.Join(env.dir, "key"))
	for i := range n {
		role := fmt.Sprintf("bench_%s_%d", randomHex(3), i)
		if _, err := env.pool.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
			return nil, err
		}
		roles = append(roles, role)
		fmt.Fprintf(&cfg, `  - name: %s
    strategy: single
    secret: bench/%s
    schedule: "@daily"
    canary: { attempts: 1 }
    target:
      postgres: { host: 127.0.0.1, port: %d, dbname: %s, sslmode: disable, username: %s, admin: env:%s }
`, strings.ReplaceAll(role, "_", "-"), role, loginPort, env.dbName, role, adminVar)
	}
	path := filepath.Join(env.dir, fmt.Sprintf("policies-%s.yaml", randomHex(4)))
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	loaded, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	rt := app.NewRuntime(loaded, nil)
	env.runtimes = append(env.runtimes, rt)
	var out []*worker
	for _, role := range roles {
		policy, err := rt.Credential(ctx, strings.ReplaceAll(role, "_", "-"))
		if err != nil {
			return nil, err
		}
		admin, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return nil, err
		}
		out = append(out, &worker{env: env, role: role, admin: admin, policy: policy})
	}
	return out, nil
}

// rotate is one whole swarmkey rotation: lock, rows, audit, file store
// writes, set, canary, promote, finish.
func (w *worker) rotate(ctx context.Context) error {
	start := time.Now()
	_, err := w.env.rot.Rotate(ctx, w.policy, rotator.Options{Actor: "bench", OnStep: func(e rotator.StepEvent) {
		stepTimes.add(string(e.Step), e.Duration)
	}})
	stepTimes.add("total", time.Since(start))
	return err
}

// stepTimes accumulates where a rotation's time goes, for the breakdown.
var stepTimes = &stepTotals{sum: map[string]time.Duration{}, n: map[string]int{}}

type stepTotals struct {
	mu  sync.Mutex
	sum map[string]time.Duration
	n   map[string]int
}

func (s *stepTotals) add(step string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum[step] += d
	s.n[step]++
}

func (s *stepTotals) print() {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Printf("\nmean time per step of a swarmkey rotation, all concurrencies\n")
	for _, step := range []string{"create", "set", "test", "promote", "finish", "total"} {
		if s.n[step] > 0 {
			fmt.Printf("%-12s %10s\n", step, (s.sum[step] / time.Duration(s.n[step])).Round(10*time.Microsecond))
		}
	}
}

// baseline is the SQL work a rotation cannot avoid: set a new verifier,
// prove it with a new SCRAM connection and SELECT 1.
func (w *worker) baseline(ctx context.Context) error { return w.baselineAt(ctx, w.env.port) }

// baselineAt is baseline with the new connection to loginPort.
func (w *worker) baselineAt(ctx context.Context, loginPort int) error {
	password, err := rotator.GeneratePassword(rotator.PasswordRules{})
	if err != nil {
		return err
	}
	verifier, err := postgres.SCRAMVerifier(password)
	if err != nil {
		return err
	}
	if _, err := w.admin.Exec(ctx, "ALTER ROLE "+w.role+" PASSWORD '"+verifier+"'"); err != nil {
		return err
	}
	return pglogin.SelectOne(ctx, loginPort, w.env.dbName, w.role, password)
}

// crashSafeFloor is the baseline's SQL work plus the least a rotation that
// survives a crash at any point must add: an intent row before anything
// changes, a durable record after each step that changed something
// (pending written, verifier set, login proved, promoted), and the
// store's two durable writes. Five commits, two fsynced writes, no reads,
// no locks: less than any real rotation needs (it does not look at what
// another writer did), so a floor, not a rival design.
func (w *worker) crashSafeFloor(ctx context.Context) error {
	token := uuid.Must(uuid.NewV7()).String()
	secretID := "floor/" + w.role
	if _, err := w.env.pool.Exec(ctx, `INSERT INTO bench_floor (token, role, step) VALUES ($1, $2, 'started')`, token, w.role); err != nil {
		return err
	}
	record := func(step string) error {
		_, err := w.env.pool.Exec(ctx, `UPDATE bench_floor SET step = $2 WHERE token = $1`, token, step)
		return err
	}
	password, err := rotator.GeneratePassword(rotator.PasswordRules{})
	if err != nil {
		return err
	}
	value := secret.FromString(`{"engine":"postgres","username":"` + w.role + `","password":"` + password.RevealString() + `"}`)
	if _, err := w.env.files.PutPending(ctx, secretID, token, value); err != nil {
		return err
	}
	if err := record("created"); err != nil {
		return err
	}
	verifier, err := postgres.SCRAMVerifier(password)
	if err != nil {
		return err
	}
	if _, err := w.admin.Exec(ctx, "ALTER ROLE "+w.role+" PASSWORD '"+verifier+"'"); err != nil {
		return err
	}
	if err := record("set"); err != nil {
		return err
	}
	if err := pglogin.SelectOne(ctx, w.env.port, w.env.dbName, w.role, password); err != nil {
		return err
	}
	if err := record("tested"); err != nil {
		return err
	}
	if err := w.env.files.Promote(ctx, secretID, providers.PromoteRequest{Token: token, ExpectedCurrentID: w.floorCurrent}); err != nil {
		return err
	}
	w.floorCurrent = token
	return record("promoted")
}

// measure settles the database, runs fn on c workers for d and returns
// completions per second and the CPU milliseconds each completion cost
// this process and the PostgreSQL server together.
func (env *environment) measure(ctx context.Context, c int, d time.Duration, fn func(worker int) error) (perSecond, cpuMillis float64) {
	if err := env.settle(ctx); err != nil {
		log.Fatal(err)
	}
	postmaster := proc.PostgresPID()
	cpuBefore := proc.SelfCPU() + proc.TreeCPU(postmaster)
	var done atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := fn(i); err != nil {
					log.Fatalf("worker %d: %v", i, err)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	n := float64(max(done.Load(), 1))
	cpu := proc.SelfCPU() + proc.TreeCPU(postmaster) - cpuBefore
	return float64(done.Load()) / time.Since(start).Seconds(), float64(cpu) / float64(time.Millisecond) / n
}

// settle vacuums the benchmark's database, the shared catalogs with it, and
// ends with a checkpoint, before a measurement. Every side leaves dead rows
// behind (each ALTER ROLE rewrites a pg_authid row; the floor and swarmkey
// update their own rows): without this, the next side would pay for them,
// or for the autovacuum or checkpoint that comes at a moment no round
// chooses.
func (env *environment) settle(ctx context.Context) error {
	for _, statement := range []string{"VACUUM", "CHECKPOINT"} {
		if _, err := env.pool.Exec(ctx, statement); err != nil {
			return fmt.Errorf("settle the benchmark database: %s: %w", statement, err)
		}
	}
	return nil
}

func (env *environment) storeLatency(ctx context.Context, n int) (put, promote []time.Duration, err error) {
	value := secret.FromString(`{"engine":"postgres","username":"bench","password":"` + randomHex(16) + `"}`)
	current := ""
	for range n {
		token := uuid.Must(uuid.NewV7()).String()
		t0 := time.Now()
		if _, err := env.files.PutPending(ctx, "bench/latency", token, value); err != nil {
			return nil, nil, err
		}
		t1 := time.Now()
		if err := env.files.Promote(ctx, "bench/latency", providers.PromoteRequest{Token: token, ExpectedCurrentID: current}); err != nil {
			return nil, nil, err
		}
		t2 := time.Now()
		put, promote = append(put, t1.Sub(t0)), append(promote, t2.Sub(t1))
		current = token
	}
	return put, promote, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func pct(ds []time.Duration, p int) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return s[i].Round(time.Microsecond).String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
