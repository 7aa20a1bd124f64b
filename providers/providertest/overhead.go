package providertest

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// OverheadCase is one store operation beside the raw SDK calls it makes, for
// measuring what the store itself costs. Raw must replay exactly the calls
// Store makes for the state Prepare leaves (same calls, same order, same
// count, same request contents), without the store's logic, so that the
// ratio of the two is the store's own overhead. A store's tests should check
// that with a call recorder, since the store's calls change with its code.
type OverheadCase struct {
	// Name of the operation: "PutPending", "Promote", "Get".
	Name string
	// Prepare makes the state one call works on (a fresh secret, say) and
	// returns what Store and Raw need. It is not timed.
	Prepare func(tb testing.TB) any
	// Store runs the operation through the store.
	Store func(arg any) error
	// Raw replays the store's SDK calls.
	Raw func(arg any) error
	// Cleanup, if set, undoes Prepare. It is not timed.
	Cleanup func(tb testing.TB, arg any)
}

// BenchStore runs each case's Store as a standard benchmark (b.N calls,
// Prepare and Cleanup outside the timer); BenchRaw does the same for Raw.
// Together they suit benchstat; BenchOverhead is what gives the ratio.
func BenchStore(b *testing.B, cases []OverheadCase) { benchSide(b, cases, true) }

// BenchRaw: see BenchStore.
func BenchRaw(b *testing.B, cases []OverheadCase) { benchSide(b, cases, false) }

func benchSide(b *testing.B, cases []OverheadCase, store bool) {
	for _, c := range cases {
		run := c.Raw
		if store {
			run = c.Store
		}
		b.Run(c.Name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				arg := c.Prepare(b)
				b.StartTimer()
				if err := run(arg); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if c.Cleanup != nil {
					c.Cleanup(b, arg)
				}
				b.StartTimer()
			}
		})
	}
}

// Rounds of BenchOverhead (SWARMKEY_BENCH_ROUNDS overrides it) and the
// bounds of its calls per round: enough calls of each side for about
// roundTarget of store time, between minCalls and maxCalls
// (SWARMKEY_BENCH_CALLS fixes the number). A fast fake gets many calls per
// round, a slow emulator few, and both runs take seconds, not minutes.
const (
	defaultRounds = 15
	roundTarget   = 200 * time.Millisecond
	minCalls      = 20
	maxCalls      = 200
)

// overheadResult is one case's measurement, kept so that a benchmark run
// again with a larger b.N reports it instead of measuring again.
type overheadResult struct {
	store, raw, ratio float64
	calls             int
}

var overheadResults sync.Map // b.Name() → overheadResult

// BenchOverhead measures each case's Store beside its Raw in the same run
// against the same backend: rounds of calls, alternating store and raw call
// by call (which of the two goes first alternates too, so neither always
// meets the warmer server). For each round it takes the median latency of
// each side (a median, not a mean: an emulator's garbage-collection pause
// lands on one call and would swing a mean); it reports the medians over
// the rounds as store-ns/op and raw-ns/op, and the median of the rounds'
// store/raw ratios as ratio, the figure to read (aim: under 1.1). ns/op is
// the store's median.
//
// The measurement runs once however large b.N grows; run it with
// -benchtime=1x.
func BenchOverhead(b *testing.B, cases []OverheadCase) {
	rounds := envInt(b, "SWARMKEY_BENCH_ROUNDS", defaultRounds)
	calls := envInt(b, "SWARMKEY_BENCH_CALLS", 0)
	for _, c := range cases {
		b.Run(c.Name, func(b *testing.B) {
			if r, ok := overheadResults.Load(b.Name()); ok {
				report(b, r.(overheadResult))
				return
			}
			r := measureOverhead(b, c, rounds, calls)
			overheadResults.Store(b.Name(), r)
			report(b, r)
			b.Logf("%s: store %s, raw %s (medians of %d rounds × %d calls of each), overhead ratio %.3f",
				c.Name, time.Duration(r.store), time.Duration(r.raw), rounds, r.calls, r.ratio)
		})
	}
}

func report(b *testing.B, r overheadResult) {
	b.ReportMetric(r.store, "ns/op")
	b.ReportMetric(r.store, "store-ns/op")
	b.ReportMetric(r.raw, "raw-ns/op")
	b.ReportMetric(r.ratio, "ratio")
}

func measureOverhead(b *testing.B, c OverheadCase, rounds, calls int) overheadResult {
	b.Helper()
	b.StopTimer()
	timeOne := func(run func(any) error) time.Duration {
		arg := c.Prepare(b)
		start := time.Now()
		err := run(arg)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if c.Cleanup != nil {
			c.Cleanup(b, arg)
		}
		return d
	}
	// A few pairs first, not counted: connections, caches and the server
	// warm up, and the last store call sizes the rounds.
	var warm time.Duration
	for range 3 {
		warm = timeOne(c.Store)
		timeOne(c.Raw)
	}
	if calls == 0 {
		calls = min(max(int(roundTarget/max(warm, 1)), minCalls), maxCalls)
	}

	var storeMedians, rawMedians, ratios []float64
	for range rounds {
		storeTimes, rawTimes := make([]float64, 0, calls), make([]float64, 0, calls)
		for i := range calls {
			if i%2 == 0 {
				storeTimes = append(storeTimes, float64(timeOne(c.Store)))
				rawTimes = append(rawTimes, float64(timeOne(c.Raw)))
			} else {
				rawTimes = append(rawTimes, float64(timeOne(c.Raw)))
				storeTimes = append(storeTimes, float64(timeOne(c.Store)))
			}
		}
		s, r := median(storeTimes), median(rawTimes)
		storeMedians, rawMedians, ratios = append(storeMedians, s), append(rawMedians, r), append(ratios, s/r)
	}
	return overheadResult{store: median(storeMedians), raw: median(rawMedians), ratio: median(ratios), calls: calls}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// envInt reads a positive whole number from the environment, def when unset.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}
