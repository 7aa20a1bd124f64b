// Command emergencybench measures emergency rotation: the wall time of
// `swarmkey rotate --all --local --concurrency C` over N alternating
// postgres policies (file store), run in-process through the same code
// (app.Session.RotateMany), against the physical floor: a plain program that
// does the same SQL work at the same concurrency, with no step machine and
// no store. For each policy the floor takes and releases the policy's
// advisory lock, records the rotation, its five steps, its pending version
// and its outcome with the state package's statements (the same state-db
// writes a rotation makes, into a state database of its own), sets a new
// SCRAM verifier on the role that is not current (ALTER ROLE … LOGIN
// PASSWORD in a transaction), and proves it with a new SCRAM login and
// SELECT 1.
//
// Rounds alternate floor and swarmkey, so that drift on a shared machine
// hits both; the ratio floor/swarmkey is the median over rounds (aim:
// swarmkey within 1.25 × the floor's time, a ratio ≥ 0.8).
// Run it with `make bench`.
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
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	"github.com/swarmkey/swarmkey/providers/file"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/state"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// aimTimes is issue 16's aim: the emergency path within 1.25 × the time
// of the floor's SQL work in the same run.
const aimTimes = 1.25

// adminURLVariable holds the benchmark database's superuser URL, read by
// the config's database and admin references as a real config reads env:.
const adminURLVariable = "SWARMKEY_BENCH_ADMIN_URL"

func main() {
	var (
		policies    = flag.Int("policies", 1000, "how many alternating postgres policies")
		concurrency = flag.Int("concurrency", 8, "how many policies rotate at once (rotate --concurrency)")
		rounds      = flag.Int("rounds", 3, "rounds (medians are reported)")
		cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
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
	if *policies < 1 || *concurrency < 1 || *rounds < 1 {
		log.Fatal("-policies, -concurrency and -rounds must be 1 or more")
	}
	ctx := context.Background()
	env, err := newEnvironment(ctx, serverURL, port, *policies)
	if err != nil {
		log.Fatal(err)
	}
	defer env.close()

	fmt.Printf("emergency rotation: %d alternating postgres policies (file store), concurrency %d, %d rounds\n", *policies, *concurrency, *rounds)
	fmt.Printf("%-6s %12s %12s %8s   %s\n", "round", "floor", "swarmkey", "ratio", "CPU seconds, floor / swarmkey: this process, PostgreSQL, whole machine")
	postmaster := proc.PostgresPID()
	var floors, sks, ratios []float64
	for i := range *rounds {
		var floor, sk time.Duration
		if err := env.settle(ctx); err != nil {
			log.Fatal(err)
		}
		floorCPU, err := measureCPU(postmaster, func() (err error) {
			floor, err = env.floor(ctx, *concurrency)
			return err
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := env.settle(ctx); err != nil {
			log.Fatal(err)
		}
		skCPU, err := measureCPU(postmaster, func() (err error) {
			sk, err = env.swarmkey(ctx, *concurrency)
			return err
		})
		if err != nil {
			log.Fatal(err)
		}
		ratio := floor.Seconds() / sk.Seconds()
		floors, sks, ratios = append(floors, floor.Seconds()), append(sks, sk.Seconds()), append(ratios, ratio)
		fmt.Printf("%-6d %11.2fs %11.2fs %8.2f   %s / %s\n", i+1, floor.Seconds(), sk.Seconds(), ratio, floorCPU, skCPU)
	}
	fmt.Printf("%-6s %11.2fs %11.2fs %8.2f  (floor/swarmkey, aim ≥ %.2f: swarmkey within %.2f × the floor)\n", "median", median(floors), median(sks), median(ratios),
		1/aimTimes, aimTimes)
	fmt.Println("(CPU: this process, the PostgreSQL server's processes, and every process on the machine; on a busy machine the last is more than the first two)")
	headline.Print(headline.Figure{
		Name:     fmt.Sprintf("emergency rotation, %d policies, concurrency %d", *policies, *concurrency),
		Aim:      fmt.Sprintf("≤ %.2f × floor", aimTimes),
		Measured: fmt.Sprintf("%.2f s vs floor %.2f s (%.2f ×)", median(sks), median(floors), 1/median(ratios)),
		Ratio:    median(ratios), Pass: 1/median(ratios) <= aimTimes,
	})
}

type environment struct {
	serverURL string
	port      int
	dir       string
	// databases made for the run: the target and swarmkey's state, the
	// floor's state.
	dbName, floorName string
	dbURL             string
	roles             []policyRoles
	session           *app.Session
	floorState        *state.DB
	// current[i] says which role of policy i the floor treats as current.
	current []int
}

type policyRoles struct {
	policy string
	logins [2]string // username and alternate_username
	group  string
}

func newEnvironment(ctx context.Context, serverURL string, port, n int) (*environment, error) {
	env := &environment{serverURL: serverURL, port: port}
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	prefix := "emb_" + randomHex(3)
	env.dbName, env.floorName = prefix, prefix+"_floor"
	for _, name := range []string{env.dbName, env.floorName} {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return nil, err
		}
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + env.dbName
	env.dbURL = u.String()
	u.Path = "/" + env.floorName
	floorPool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		return nil, err
	}
	env.floorState = state.NewFromPool(floorPool, state.Options{})
	if _, err := env.floorState.Migrate(ctx); err != nil {
		return nil, err
	}

	// Both roles of every policy exist, belong to the group and act as it
	// (ALTER ROLE … SET role) from the start, as alternating rotations leave
	// them: an emergency rotates a fleet that has been rotated before, so no
	// round creates a role or sets what a steady rotation leaves alone.
	var sql strings.Builder
	for i := range n {
		r := policyRoles{policy: fmt.Sprintf("emergency-%04d", i), group: fmt.Sprintf("%s_g%04d", prefix, i),
			logins: [2]string{fmt.Sprintf("%s_r%04d", prefix, i), fmt.Sprintf("%s_r%04d_b", prefix, i)}}
		env.roles = append(env.roles, r)
		fmt.Fprintf(&sql, "CREATE ROLE %s NOLOGIN; CREATE ROLE %s LOGIN IN ROLE %s; CREATE ROLE %s LOGIN IN ROLE %s;\n",
			r.group, r.logins[0], r.group, r.logins[1], r.group)
		fmt.Fprintf(&sql, "ALTER ROLE %s SET role = %s; ALTER ROLE %s SET role = %s;\n",
			r.logins[0], r.group, r.logins[1], r.group)
	}
	if _, err := admin.Exec(ctx, sql.String()); err != nil {
		return nil, err
	}
	env.current = make([]int, n)

	if env.dir, err = os.MkdirTemp("", "swarmkey-emergencybench"); err != nil {
		return nil, err
	}
	if err := os.Setenv(adminURLVariable, env.dbURL); err != nil {
		return nil, err
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "database: env:%s\nstores:\n  file:\n    dir: %s\n    key_file: %s\npolicies:\n", adminURLVariable,
		filepath.Join(env.dir, "secrets"), filepath.Join(env.dir, "key"))
	for _, r := range env.roles {
		fmt.Fprintf(&cfg, `  - name: %s
    strategy: alternating
    secret: emergency/%s
    schedule: "@daily"
    tags: [emergency]
    canary: { attempts: 1 }
    target:
      postgres: { host: 127.0.0.1, port: %d, dbname: %s, sslmode: disable, username: %s, alternate_username: %s, group_role: %s, admin: env:%s }
`, r.policy, r.policy, port, env.dbName, r.logins[0], r.logins[1], r.group, adminURLVariable)
	}
	path := filepath.Join(env.dir, "policies.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	if err := file.GenerateKey(filepath.Join(env.dir, "key")); err != nil {
		return nil, err
	}
	loaded, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	env.session, err = app.Open(ctx, app.NewRuntime(loaded, nil))
	if err != nil {
		return nil, err
	}
	if _, err := env.session.DB.Migrate(ctx); err != nil {
		return nil, err
	}
	return env, nil
}

func (env *environment) close() {
	ctx := context.Background()
	if env.session != nil {
		env.session.Close()
	}
	if env.floorState != nil {
		env.floorState.Close()
	}
	os.RemoveAll(env.dir)
	admin, err := pgx.Connect(ctx, env.serverURL)
	if err != nil {
		return
	}
	defer admin.Close(ctx)
	for _, name := range []string{env.dbName, env.floorName} {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	// Roles belong to the server, not to the database.
	for _, r := range env.roles {
		_, _ = admin.Exec(ctx, "DROP ROLE IF EXISTS "+r.logins[0]+", "+r.logins[1]+", "+r.group)
	}
}

// settle vacuums both databases, the shared catalogs with them, before a
// phase. Each phase leaves thousands of dead rows behind (every ALTER ROLE
// rewrites a pg_authid row, every step a rotations row); without this,
// the next phase would pay for them, or for the autovacuum that comes for
// them at a moment no round chooses, and one side's rounds for the other's
// leavings.
func (env *environment) settle(ctx context.Context) error {
	for _, name := range []string{env.dbName, env.floorName} {
		u, err := url.Parse(env.serverURL)
		if err != nil {
			return err
		}
		u.Path = "/" + name
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "VACUUM")
		conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("vacuum %s: %w", name, err)
		}
	}
	return nil
}

// swarmkey is `rotate --all --local --concurrency c`, in process: the
// selection, the emergency audit entry, the calendar and every policy's
// rotation (lock, rows, audit, store, set, canary, promote, finish).
func (env *environment) swarmkey(ctx context.Context, c int) (time.Duration, error) {
	start := time.Now()
	names, err := env.session.SelectPolicies(nil, true)
	if err != nil {
		return 0, err
	}
	results, err := env.session.RotateMany(ctx, app.RotateManyOptions{Policies: names, Selector: "all", Local: true,
		Concurrency: c, Actor: "operator:bench"})
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	for _, r := range results {
		if r.Outcome != app.ManyRotated {
			return 0, fmt.Errorf("policy %s: %s: %v", r.Policy, r.Outcome, r.Err)
		}
	}
	return took, nil
}

// floor does the SQL work of the same rotations with c workers, each with
// its own admin connection.
func (env *environment) floor(ctx context.Context, c int) (time.Duration, error) {
	work := make(chan int)
	errs := make(chan error, c)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			admin, err := pgx.Connect(ctx, env.dbURL)
			if err != nil {
				errs <- err
				for range work {
				}
				return
			}
			defer admin.Close(ctx)
			for i := range work {
				if err := env.floorOne(ctx, admin, i); err != nil {
					errs <- err
					for range work {
					}
					return
				}
			}
		})
	}
	for i := range env.roles {
		work <- i
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return took, nil
}

func (env *environment) floorOne(ctx context.Context, admin *pgx.Conn, i int) error {
	r := env.roles[i]
	db := env.floorState
	lock, err := db.TryLockPolicy(ctx, r.policy)
	if err != nil {
		return err
	}
	defer lock.Release()
	token := uuid.Must(uuid.NewV7()).String()
	if err := db.InsertRotation(ctx, state.Rotation{Token: token, Policy: r.policy, Strategy: "alternating", Store: "file",
		SecretID: "emergency/" + r.policy, Actor: "operator:bench"}, state.AuditEntry{Actor: "operator:bench", Policy: r.policy,
		Rotation: token, Action: "rotation.started"}); err != nil {
		return err
	}
	next := 1 - env.current[i]
	role := r.logins[next]
	step := func(name string) error {
		return db.CompleteStep(ctx, token, name, role, state.StepTiming{Step: name, Started: time.Now().UTC()})
	}
	password, err := rotator.GeneratePassword(rotator.PasswordRules{})
	if err != nil {
		return err
	}
	verifier, err := postgres.SCRAMVerifier(password)
	if err != nil {
		return err
	}
	if err := step("create"); err != nil {
		return err
	}
	if err := db.RecordPendingVersion(ctx, token, token); err != nil {
		return err
	}
	if err := pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "ALTER ROLE "+role+" LOGIN PASSWORD '"+verifier+"'")
		return err
	}); err != nil {
		return err
	}
	if err := step("set"); err != nil {
		return err
	}
	if err := pglogin.SelectOne(ctx, env.port, env.dbName, role, password); err != nil {
		return err
	}
	for _, name := range []string{"test", "promote", "finish"} {
		if err := step(name); err != nil {
			return err
		}
	}
	env.current[i] = next
	return db.FinishRotation(ctx, token, state.OutcomeSucceeded, "", false, nil, true,
		state.AuditEntry{Actor: "operator:bench", Policy: r.policy, Rotation: token, Action: "rotation.succeeded"})
}

// phaseCPU is the CPU time one phase of a round took.
type phaseCPU struct{ self, server, machine time.Duration }

func (c phaseCPU) String() string {
	return fmt.Sprintf("%.2f, %.2f, %.2f", c.self.Seconds(), c.server.Seconds(), c.machine.Seconds())
}

// measureCPU runs phase and returns the CPU time it took this process, the
// PostgreSQL server (postmaster and backends, ended ones included) and the
// whole machine.
func measureCPU(postmaster int, phase func() error) (phaseCPU, error) {
	self0, server0, machine0 := proc.SelfCPU(), proc.TreeCPU(postmaster), proc.MachineBusy()
	err := phase()
	return phaseCPU{self: proc.SelfCPU() - self0, server: proc.TreeCPU(postmaster) - server0, machine: proc.MachineBusy() - machine0}, err
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
