package chaos_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/chaos"
	"github.com/swarmkey/swarmkey/internal/mototest"
)

func TestMain(m *testing.M) { os.Exit(mototest.Run(m)) }

// The short run is part of `make test`; `make chaos` passes -chaos.long
// (and may change any count).
var (
	long         = flag.Bool("chaos.long", false, "the long run of `make chaos` (1,000 kills and more)")
	seed         = flag.Uint64("chaos.seed", 0, "random seed (0: from the clock); printed, to repeat a run's choices")
	duration     = flag.Duration("chaos.duration", 0, "time bound of the run (default 5m short, 50m long)")
	localKills   = flag.Int("chaos.local-kills", -1, "kill -9 of rotate --local")
	serveKills   = flag.Int("chaos.serve-kills", -1, "kill -9 of serve replicas")
	pgRestarts   = flag.Int("chaos.pg-restarts", -1, "PostgreSQL restarts")
	readOnly     = flag.Int("chaos.read-only", -1, "read-only store folder rounds")
	awsFaults    = flag.Int("chaos.aws-faults", -1, "AWS proxy faults and another writer's label changes")
	gcpFaults    = flag.Int("chaos.gcp-faults", -1, "GCP faults and crashes (in process)")
	serveHolds   = flag.Int("chaos.serve-holds", -1, "AWS answers held past a serve job's timeout")
	hangProbes   = flag.Int("chaos.hang-probes", -1, "AWS answers held 90s under rotate --local")
	plannerKills = flag.Int("chaos.planner-kills", -1, "kill -9 of the replica that plans (half: River's leader)")
	stateDowns   = flag.Int("chaos.state-downs", -1, "state database stopped just before a store call of rotate --local")
	replicas     = flag.Int("chaos.replicas", 3, "serve replicas")
	report       = flag.String("chaos.report", "", "also write the report to this file")
)

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage(t *testing.T) string {
	b, err := os.ReadFile("/proc/loadavg")
	require.NoError(t, err)
	f := strings.Fields(string(b))
	require.GreaterOrEqual(t, len(f), 3)
	return strings.Join(f[:3], " ")
}

func plan() chaos.Plan {
	p := chaos.Plan{LocalKills: 12, ServeKills: 6, PGRestarts: 2, ReadOnly: 2, AWSFaults: 12, GCPFaults: 12, ServeHolds: 1,
		StateDowns: 3, PlannerKills: 2, Duration: 5 * time.Minute}
	if *long {
		p = chaos.Plan{LocalKills: 850, ServeKills: 250, PGRestarts: 25, ReadOnly: 25, AWSFaults: 300, GCPFaults: 300,
			ServeHolds: 15, HangProbes: 1, StateDowns: 30, PlannerKills: 40, Duration: 50 * time.Minute}
	}
	for _, o := range []struct {
		flag int
		dst  *int
	}{{*localKills, &p.LocalKills}, {*serveKills, &p.ServeKills}, {*pgRestarts, &p.PGRestarts},
		{*readOnly, &p.ReadOnly}, {*awsFaults, &p.AWSFaults}, {*gcpFaults, &p.GCPFaults}, {*serveHolds, &p.ServeHolds},
		{*hangProbes, &p.HangProbes}, {*stateDowns, &p.StateDowns}, {*plannerKills, &p.PlannerKills}} {
		if o.flag >= 0 {
			*o.dst = o.flag
		}
	}
	if *duration > 0 {
		p.Duration = *duration
	}
	return p
}

// TestChaos injects faults into a real installation and requires every
// invariant to hold after each: no lockout, no foreign promotion, no stuck
// policy, no double rotation.
func TestChaos(t *testing.T) {
	s := *seed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	p := plan()
	loadBefore := loadAverage(t)
	t.Logf("seed %d (repeat with -chaos.seed %d), plan %+v, load average %s", s, s, p, loadBefore)
	h := chaos.New(t, chaos.Options{Seed: s, Replicas: *replicas, Logf: t.Logf})
	t.Logf("set up in %s", h.Stats.Elapsed().Round(time.Millisecond))
	h.Run(context.Background(), p)

	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %s; load average (1, 5, 15 min) before %s, after %s on %d CPUs\n", s, time.Now().UTC().Format(time.RFC3339),
		loadBefore, loadAverage(t), runtime.NumCPU())
	h.Stats.Report(&b)
	t.Log("\n" + b.String())
	if *report != "" {
		require.NoError(t, os.WriteFile(*report, []byte(b.String()), 0o644))
	}

	// Every kind of injection happened (a run cut short by its time bound
	// says so in the report).
	require.Positive(t, h.Stats.Injections(chaos.KillLocal), "kills of rotate --local")
	if p.ServeKills > 0 {
		require.Positive(t, h.Stats.Injections(chaos.KillServe), "kills of serve replicas")
	}
	if p.PGRestarts > 0 {
		require.Positive(t, h.Stats.Injections(chaos.PGRestart+"*"), "PostgreSQL restarts")
	}
	if p.ReadOnly > 0 {
		require.Positive(t, h.Stats.Injections(chaos.ReadOnly), "read-only store folder")
	}
	for _, inv := range chaos.Invariants {
		require.Zero(t, h.Stats.Count(inv), "violations of %q: see the report above", inv)
	}
}
