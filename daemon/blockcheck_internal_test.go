package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/swarmkey/swarmkey/internal/rotationtest"
	"github.com/swarmkey/swarmkey/schedule"
)

// TestWindowIsJudgedByTheClockAfterTheCalendarRead: the window check reads
// the run calendar from the state database, which can take seconds (a
// restarting server). The window is judged by the clock once the read is
// done, not by the one before it (make chaos found a rotation that began
// 3.7 s after its window so).
func TestWindowIsJudgedByTheClockAfterTheCalendarRead(t *testing.T) {
	t.Parallel()
	db, _ := rotationtest.State(t)
	start := time.Now().UTC()
	windowEnd := start.Add(time.Second)
	calls := 0
	now := func() time.Time { // the second reading comes after a slow read
		calls++
		if calls == 1 {
			return start
		}
		return windowEnd.Add(3 * time.Second)
	}
	set := &PolicySet{Policies: map[string]Scheduled{"p": {}}}
	b := &blockCheck{db: db, set: set, policy: "p", plan: schedule.Timing{}, now: now, windowEnd: windowEnd}
	err := b.check(context.Background())
	require.True(t, errors.Is(err, ErrWindowClosed), "got %v", err)
}
