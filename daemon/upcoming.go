package daemon

import (
	"context"
	"time"

	"github.com/swarmkey/swarmkey/schedule"
	"github.com/swarmkey/swarmkey/state"
)

// UpcomingRow is one fire of one policy as `swarmkey plan` shows it.
type UpcomingRow struct {
	Policy      string    `json:"policy"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Slot is the chosen start; nil when the fire is deferred.
	Slot *time.Time `json:"slot,omitempty"`
	// BlockedBy are the intervals that defer the fire.
	BlockedBy []schedule.Interval `json:"-"`
	// PushedBy are the intervals that moved the slot after the window start.
	PushedBy []schedule.Interval `json:"-"`
}

// Upcoming plans the named policies from from to to as the daemon would,
// against the runs, leases and deny windows known now: at most 200 fires
// per policy.
func Upcoming(ctx context.Context, db *state.DB, set *PolicySet, names []string, from, to time.Time) ([]UpcomingRow, error) {
	states, err := db.PlanStatesOf(ctx, set.StateReadOf(names))
	if err != nil {
		return nil, err
	}
	cal, err := set.Calendar(ctx, db, from)
	if err != nil {
		return nil, err
	}
	var rows []UpcomingRow
	for _, name := range names {
		p := set.Policies[name]
		st := states[name]
		for _, w := range schedule.Upcoming(*p.Plan, schedule.State{LastRotated: deref(st.RotatedAt)}, cal.For(name), from, 200) {
			if !w.Window.Start.Before(to) {
				break
			}
			row := UpcomingRow{Policy: name, WindowStart: w.Window.Start, WindowEnd: w.Window.End}
			if w.Deferred() {
				row.BlockedBy = w.Blockers
			} else {
				slot := w.Start
				row.Slot = &slot
				if slot.After(w.Window.Start) {
					row.PushedBy = schedule.BlockersAt(*p.Plan, cal.For(name), w.Window.Start)
				}
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}
