package schedule

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// planAllFixture builds nPolicies policies and 1,000 runs (700 one-off, 300
// recurring), each run used by 30 policies (so each of 10,000 policies by
// about three runs), plus 100 leases and two global deny windows.
func planAllFixture(tb testing.TB, nPolicies int) ([]Timing, Busy, time.Time) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	now := utc("2026-03-27T10:00:00Z")
	specs := []struct{ spec, zone string }{
		{"0 3 * * *", ""}, {"30 2 * * *", "Europe/Berlin"}, {"0 */6 * * *", ""},
		{"15 9 * * 1-5", "Asia/Tokyo"}, {"0 22 * * 0", "Australia/Sydney"}, {"@every 12h", ""},
		{"45 1 * * *", "America/New_York"}, {"0 4 1 * *", ""}, {"*/30 * * * *", "Europe/Berlin"},
		{"0 12 * * 1,3,5", "America/New_York"},
	}
	var scheds []Schedule
	for _, s := range specs {
		scheds = append(scheds, MustParse(s.spec, s.zone))
	}
	policies := make([]Timing, nPolicies)
	for i := range policies {
		s := scheds[i%len(scheds)]
		policies[i] = Timing{
			Name:             fmt.Sprintf("policy-%05d", i),
			Schedule:         s,
			Window:           min(2*time.Hour, s.Period()/2),
			ExpectedDuration: 10 * time.Minute,
			GuardBefore:      10 * time.Minute,
			GuardAfter:       15 * time.Minute,
			MaxAge:           7 * 24 * time.Hour,
		}
	}
	users := func() []string {
		out := make([]string, 30)
		for i := range out {
			out[i] = policies[rng.IntN(nPolicies)].Name
		}
		return out
	}
	var b Busy
	for i := 0; i < 700; i++ {
		b.OneOff = append(b.OneOff, OneOffRun{
			Name:     fmt.Sprintf("run-%d", i),
			Start:    now.Add(time.Duration(rng.IntN(7*24*60)) * time.Minute),
			Duration: time.Duration(30+rng.IntN(210)) * time.Minute,
			Policies: users(),
		})
	}
	for i := 0; i < 300; i++ {
		b.Recurring = append(b.Recurring, RecurringRun{
			Name:     fmt.Sprintf("nightly-%d", i),
			Schedule: MustParse(fmt.Sprintf("%d %d * * *", rng.IntN(60), rng.IntN(24)), "Europe/Berlin"),
			Duration: time.Duration(30+rng.IntN(150)) * time.Minute,
			Policies: users(),
		})
	}
	for i := 0; i < 100; i++ {
		b.Leases = append(b.Leases, Lease{
			Name:          fmt.Sprintf("lease-%d", i),
			Started:       now.Add(-time.Hour),
			LastHeartbeat: now.Add(-time.Duration(rng.IntN(120)) * time.Second),
			TTL:           time.Minute,
			Policies:      []string{policies[rng.IntN(nPolicies)].Name},
		})
	}
	b.Deny = []DenyWindow{
		{Name: "release-freeze", Schedule: MustParse("0 16 * * 5", "Europe/Berlin"), Duration: 64 * time.Hour},
		{Name: "business-hours", Schedule: MustParse("0 9 * * 1-5", "America/New_York"), Duration: time.Hour},
	}
	return policies, b, now
}

// BenchmarkPlanAll plans 10,000 and 100,000 policies against 1,000 runs,
// indexing them into a Calendar inside the timed loop. Besides ns/op it
// reports cpu-ns/op, the process CPU time per op (GC included), which stays
// meaningful on a shared, loaded machine. The 100,000-policy run prints its
// headline figure for make bench's summary (issue 16: under 500 ms).
func BenchmarkPlanAll(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			policies, busy, now := planAllFixture(b, n)
			states := make([]State, len(policies))
			for i := range states {
				states[i].LastRotated = now.Add(-48 * time.Hour)
			}
			var cpu time.Duration
			ops := 0
			for b.Loop() {
				c0 := cpuTime()
				cal := NewCalendar(busy)
				PlanAll(policies, states, cal, now)
				cpu += cpuTime() - c0
				ops++
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(ops), "cpu-ns/op")
			if n == 100000 {
				perOp := b.Elapsed() / time.Duration(ops)
				printHeadline(headlineFigure{
					Name: "full plan, 100,000 policies against 1,000 runs", Aim: "< 500 ms",
					Measured: fmt.Sprintf("%.0f ms (%.0f ms of CPU)", perOp.Seconds()*1000, float64(cpu.Milliseconds())/float64(ops)),
					Pass:     perOp < 500*time.Millisecond,
				})
			}
		})
	}
}

// headlineFigure is bench/internal/headline's Figure, which a package
// outside bench/ may not import: make bench's summary reads the line.
type headlineFigure struct {
	Name     string  `json:"figure"`
	Aim      string  `json:"aim"`
	Measured string  `json:"measured"`
	Ratio    float64 `json:"ratio,omitempty"`
	Pass     bool    `json:"pass"`
}

func printHeadline(f headlineFigure) {
	line, err := json.Marshal(f)
	if err != nil {
		panic(err)
	}
	fmt.Printf("HEADLINE %s\n", line)
}

// PlanAll splits 10,000 policies across goroutines and shares one deny
// index; each Decision must equal a lone Plan's.
func TestPlanAllMatchesPlan(t *testing.T) {
	t.Parallel()
	policies, busy, now := planAllFixture(t, 10000)
	states := make([]State, len(policies))
	for i := range states {
		states[i] = State{LastRotated: now.Add(-time.Duration(i) * time.Hour), LastPlannedFire: policies[i].Schedule.Prev(now.Add(-time.Duration(i%3) * 24 * time.Hour))}
		policies[i].MaxAge = 30 * 24 * time.Hour
		policies[i].OnOverdue = []string{OverdueAlert, OverdueForce}[i%2]
		policies[i].Missed = []string{MissedNextWindow, MissedASAP}[i%2]
	}
	cal := NewCalendar(busy)
	got := PlanAll(policies, states, cal, now)
	require.Len(t, got, len(policies))
	for i := 0; i < len(policies); i += 7 {
		require.Equal(t, Plan(policies[i], states[i], cal.For(policies[i].Name), now), got[i], policies[i].Name)
	}
	require.Panics(t, func() { PlanAll(policies, states[:1], cal, now) })
}
