package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swarmkey/swarmkey/bench/internal/proc"
	"github.com/swarmkey/swarmkey/providers"
	"github.com/swarmkey/swarmkey/rotator"
	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/state"
)

// profileAdminVariable holds the admin URL of the profile pass: through
// the admin relay.
const profileAdminVariable = "SWARMKEY_BENCH_PROFILE_ADMIN_URL"

// segments of a rotation in the profile, in order: "start" is from the
// call to the check before the rotation is recorded (the lock, the reads of
// the rotation rows and of the store); each step runs from the end of the
// one before (create includes recording the rotation); "end" is recording
// the outcome and releasing the lock.
var segments = []string{"start", "create", "set", "test", "promote", "finish", "end"}

// usage is what one segment cost.
type usage struct {
	elapsed                 time.Duration
	state, admin, login     counts
	storeReads, storeWrites int64
	cpuSelf, cpuServer      time.Duration
}

func (u usage) minus(v usage) usage {
	return usage{
		elapsed:     u.elapsed - v.elapsed,
		state:       counts{u.state.connections - v.state.connections, u.state.roundTrips - v.state.roundTrips},
		admin:       counts{u.admin.connections - v.admin.connections, u.admin.roundTrips - v.admin.roundTrips},
		login:       counts{u.login.connections - v.login.connections, u.login.roundTrips - v.login.roundTrips},
		storeReads:  u.storeReads - v.storeReads,
		storeWrites: u.storeWrites - v.storeWrites,
		cpuSelf:     u.cpuSelf - v.cpuSelf,
		cpuServer:   u.cpuServer - v.cpuServer,
	}
}

func (u usage) plus(v usage) usage {
	return usage{
		elapsed:     u.elapsed + v.elapsed,
		state:       counts{u.state.connections + v.state.connections, u.state.roundTrips + v.state.roundTrips},
		admin:       counts{u.admin.connections + v.admin.connections, u.admin.roundTrips + v.admin.roundTrips},
		login:       counts{u.login.connections + v.login.connections, u.login.roundTrips + v.login.roundTrips},
		storeReads:  u.storeReads + v.storeReads,
		storeWrites: u.storeWrites + v.storeWrites,
		cpuSelf:     u.cpuSelf + v.cpuSelf,
		cpuServer:   u.cpuServer + v.cpuServer,
	}
}

// profiler reads every counter at once.
type profiler struct {
	start               time.Time
	state, admin, login *relay
	store               *countingStore
	serverPID           int
}

func (p *profiler) now() usage {
	return usage{
		elapsed: time.Since(p.start), state: p.state.snapshot(), admin: p.admin.snapshot(), login: p.login.snapshot(),
		storeReads: p.store.reads.Load(), storeWrites: p.store.writes.Load(),
		cpuSelf: proc.SelfCPU(),
	}
}

// profile runs rotations one at a time through relays that count round
// trips and connections, for a while, and prints where a rotation's time
// goes, step by step, beside the baseline's operation measured the same
// way. The profile's times include the relays' hop; the measured rounds
// above do not go through them.
func (env *environment) profile(ctx context.Context, d time.Duration) error {
	sockets := os.Getenv("SWARMKEY_TEST_POSTGRES_SOCKETS")
	if sockets == "" {
		return fmt.Errorf("the profile needs SWARMKEY_TEST_POSTGRES_SOCKETS (run under scripts/with-postgres)")
	}
	socketName := fmt.Sprintf(".s.PGSQL.%d", env.port)
	server := filepath.Join(sockets, socketName)
	var relays []*relay
	defer func() {
		for _, r := range relays {
			r.close()
		}
	}()
	unixRelay := func(name string) (*relay, string, error) {
		dir := filepath.Join(env.dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", err
		}
		r, err := startRelay("unix", filepath.Join(dir, socketName), "unix", server)
		if err != nil {
			return nil, "", err
		}
		relays = append(relays, r)
		return r, fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", env.dbName, url.QueryEscape(dir), env.port), nil
	}
	stateRelay, stateURL, err := unixRelay("state-relay")
	if err != nil {
		return err
	}
	adminRelay, adminURL, err := unixRelay("admin-relay")
	if err != nil {
		return err
	}
	loginRelay, err := startRelay("tcp", "127.0.0.1:0", "tcp", fmt.Sprintf("127.0.0.1:%d", env.port))
	if err != nil {
		return err
	}
	relays = append(relays, loginRelay)
	loginPort := loginRelay.listener.Addr().(*net.TCPAddr).Port
	if err := os.Setenv(profileAdminVariable, adminURL); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, stateURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	rot := rotator.New(state.NewFromPool(pool, state.Options{}), rotator.Config{})
	ws, err := env.workersAt(ctx, 1, loginPort, profileAdminVariable, adminURL)
	if err != nil {
		return err
	}
	w := ws[0]
	store := &countingStore{Store: w.policy.Store}
	w.policy.Store = store
	prof := &profiler{start: time.Now(), state: stateRelay, admin: adminRelay, login: loginRelay, store: store, serverPID: proc.PostgresPID()}

	// One of each first: connections of pools opened, caches warm.
	if _, err := rot.Rotate(ctx, w.policy, rotator.Options{Actor: "bench"}); err != nil {
		return err
	}
	if err := w.baselineAt(ctx, loginPort); err != nil {
		return err
	}

	// The server's CPU is read around each loop, not per segment: reading
	// it walks /proc, which would cost more than a segment, and a backend's
	// CPU reaches its parent's count only when it exits, not in the
	// segment that spent it.
	perSegment := map[string]usage{}
	var total usage
	rotations := 0
	serverBefore := proc.TreeCPU(prof.serverPID)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); rotations++ {
		last := prof.now()
		mark := func(segment string) {
			now := prof.now()
			perSegment[segment] = perSegment[segment].plus(now.minus(last))
			last = now
		}
		first := last
		_, err := rot.Rotate(ctx, w.policy, rotator.Options{Actor: "bench",
			BeforeStart: func(context.Context) error { mark("start"); return nil },
			OnStep:      func(e rotator.StepEvent) { mark(string(e.Step)) },
		})
		if err != nil {
			return err
		}
		mark("end")
		total = total.plus(last.minus(first))
	}
	total.cpuServer = proc.TreeCPU(prof.serverPID) - serverBefore
	var base usage
	baselines := 0
	serverBefore = proc.TreeCPU(prof.serverPID)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); baselines++ {
		before := prof.now()
		if err := w.baselineAt(ctx, loginPort); err != nil {
			return err
		}
		base = base.plus(prof.now().minus(before))
	}
	base.cpuServer = proc.TreeCPU(prof.serverPID) - serverBefore

	fmt.Printf("\nwhere a rotation's time goes, concurrency 1, through counting relays: means over %d rotations and %d baseline operations\n", rotations, baselines)
	fmt.Printf("(state db and admin: round trips, connections opened in brackets; logins: the new connections that prove a credential;\n")
	fmt.Printf(" store: reads/writes, each write durable (fsync); CPU: this process (the relays included), and the PostgreSQL server's processes, whole operations only)\n")
	fmt.Printf("%-10s %9s %10s %10s %10s %11s %10s %10s\n", "segment", "time", "state db", "admin", "logins", "store r/w", "CPU self", "CPU server")
	row := func(name string, u usage, n int) {
		server := "—"
		if u.cpuServer != 0 {
			server = fmt.Sprintf("%.2fms", float64(u.cpuServer)/float64(n)/1e6)
		}
		per := func(x int64) string { return strconv.FormatFloat(float64(x)/float64(n), 'f', 1, 64) }
		ms := func(x time.Duration) string { return fmt.Sprintf("%.2fms", float64(x)/float64(n)/1e6) }
		fmt.Printf("%-10s %9s %10s %10s %10s %11s %10s %10s\n", name, ms(u.elapsed),
			per(u.state.roundTrips)+" ["+per(u.state.connections)+"]",
			per(u.admin.roundTrips)+" ["+per(u.admin.connections)+"]",
			per(u.login.connections),
			per(u.storeReads)+"/"+per(u.storeWrites),
			ms(u.cpuSelf), server)
	}
	for _, s := range segments {
		row(s, perSegment[s], rotations)
	}
	row("rotation", total, rotations)
	row("baseline", base, baselines)
	return nil
}

// countingStore counts a store's reads and its writes that change a
// secret (RetireUnstaged, a no-op in the file store, is not counted).
type countingStore struct {
	providers.Store
	reads, writes atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, id string, stage providers.Stage) (providers.Version, error) {
	s.reads.Add(1)
	return s.Store.Get(ctx, id, stage)
}

func (s *countingStore) List(ctx context.Context, id string) ([]providers.Version, error) {
	s.reads.Add(1)
	return s.Store.List(ctx, id)
}

func (s *countingStore) PutPending(ctx context.Context, id, token string, v secret.Secret) (providers.Version, error) {
	s.writes.Add(1)
	return s.Store.PutPending(ctx, id, token, v)
}

func (s *countingStore) Promote(ctx context.Context, id string, req providers.PromoteRequest) error {
	s.writes.Add(1)
	return s.Store.Promote(ctx, id, req)
}

func (s *countingStore) DiscardPending(ctx context.Context, id, token string) error {
	s.writes.Add(1)
	return s.Store.DiscardPending(ctx, id, token)
}

func (s *countingStore) DiscardPendingVersion(ctx context.Context, id, version string) error {
	s.writes.Add(1)
	return s.Store.DiscardPendingVersion(ctx, id, version)
}
