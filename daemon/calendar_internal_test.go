package daemon

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// TestSharedCalendarReadsSeeWhatCameBefore: checks that ask at once share
// reads of the calendar, and each still sees every run added before it
// asked. Forty checks, each right after adding a run of its own (one every
// 3 ms, reads taking 20 ms), take fewer reads than checks, and none misses
// its run.
func TestSharedCalendarReadsSeeWhatCameBefore(t *testing.T) {
	t.Parallel()
	db, _ := rotationtest.State(t)
	ctx := context.Background()
	set := &PolicySet{Policies: map[string]Scheduled{"p": {}}}
	var reads atomic.Int64
	c := newCalendarReads(db, func() time.Time { return time.Now().UTC() })
	read := c.read
	c.read = func(ctx context.Context, set *PolicySet) (*schedule.Calendar, error) {
		reads.Add(1)
		time.Sleep(20 * time.Millisecond) // a busy database: others ask meanwhile
		return read(ctx, set)
	}
	const checks = 40
	var wg sync.WaitGroup
	missed := make(chan string, checks)
	for i := range checks {
		wg.Go(func() {
			// Staggered, so that runs are added while reads are under way.
			time.Sleep(time.Duration(i) * 3 * time.Millisecond)
			name := fmt.Sprintf("run-%02d", i)
			_, err := db.AddOneOffRun(ctx, state.OneOffRunRequest{Name: name, Start: time.Now().Add(time.Hour),
				Duration: time.Hour, Uses: []string{"p"}, CreatedBy: "test"})
			if err != nil {
				missed <- err.Error()
				return
			}
			cal, err := c.get(ctx, set)
			if err != nil {
				missed <- err.Error()
				return
			}
			if !slices.ContainsFunc(cal.For("p").OneOff, func(r schedule.OneOffRun) bool { return r.Name == name }) {
				missed <- name
			}
		})
	}
	wg.Wait()
	close(missed)
	require.Empty(t, slices.Collect(func(yield func(string) bool) {
		for m := range missed {
			if !yield(m) {
				return
			}
		}
	}), "checks that did not see their own run")
	require.Less(t, reads.Load(), int64(checks), "checks share reads")
	require.Positive(t, reads.Load())
}
